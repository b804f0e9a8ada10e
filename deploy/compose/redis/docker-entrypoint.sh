#!/usr/bin/env bash
# The official redis image's entrypoint contract, for the stand-in (written for it):
#   - a command starting with an option or a *.conf file means redis-server with it;
#   - redis-server runs as the redis user, in /data, which it owns;
#   - without a configuration file protected mode is off (the official build's default), so
#     other containers may connect; protect the server with --requirepass, as compose does;
#   - redis-cli reads its password from REDISCLI_AUTH (redis-cli's own feature).
set -euo pipefail

if [ "${1:0:1}" = '-' ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = redis-server ]; then
    case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
    esac
fi

exec "$@"
