#!/usr/bin/env bash
# kafka-storage.sh format|info|random-uuid ...: KRaft storage formatting.
exec kafka-run-class.sh kafka.tools.StorageTool "$@"
