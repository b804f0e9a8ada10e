#!/usr/bin/env bash
# kafka-run-class.sh CLASS [ARGS...]: a Kafka main class on the stand-in's classpath, with the
# official distribution's environment variables (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS,
# KAFKA_OPTS, KAFKA_LOG4J_OPTS). A shorter script than the distribution's, same contract.
set -euo pipefail
base=/opt/kafka
heap="${KAFKA_HEAP_OPTS:--Xmx256M}"
performance="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
log4j="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base/config/tools-log4j2.yaml}"
# shellcheck disable=SC2086  # the option strings are meant to split into words
exec java $heap $performance $log4j ${KAFKA_OPTS-} -cp "$base/libs/*" "$@"
