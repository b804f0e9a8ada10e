#!/usr/bin/env bash
# kafka-broker-api-versions.sh --bootstrap-server HOST:PORT: the API versions each broker
# answers with (docker-compose.yml's healthcheck of kafka).
exec kafka-run-class.sh org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
