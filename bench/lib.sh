# Helpers shared by the benchmark scripts. Source this file instead of running it.

bench_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_mirror=${BENCH_MIRROR:-$bench_repo/build/bench-mirror}
bench_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
bench_spec=$bench_repo/specs/passbolt-fpm.yaml

# The larger package set: the PHP runtime with both SAPIs and the usual base files.
bench_larger_set=(php8.2-fpm php8.2-cli php8.2-mysql php8.2-intl php8.2-gnupg php8.2-redis
        php8.2-xml php8.2-mbstring php8.2-gd php8.2-ldap php8.2-curl gnupg ca-certificates tzdata
        bash base-files netbase)

bench_die() {
        echo "$(basename "$0"): error: $*" >&2
        exit 1
}

bench_note() {
        echo "$(basename "$0"): $*" >&2
}

# Print the lines of one top-level block of a YAML file (the key line and every
# indented, blank or comment line after it), as the project's specs write them.
bench_yaml_block() {
        awk -v key="$2" '
                $0 ~ "^" key ":" { inside = 1; print; next }
                inside && /^[^ #]/ { exit }
                inside { print }
        ' "$1"
}

# Print the names in the top-level "packages:" list of a spec, one a line. Only
# plain names are read: an entry in the {name: ..., architectures: ...} form stops
# the script, because the closure would then depend on the architecture.
bench_spec_roots() {
        bench_yaml_block "$1" packages | awk '
                NR == 1 { next }
                { sub(/#.*/, "") }
                /^[ \t]*$/ { next }
                /^[ \t]*-[ \t]*[a-z0-9][a-z0-9.+-]*[ \t]*$/ { sub(/^[ \t]*-[ \t]*/, ""); sub(/[ \t]+$/, ""); print; next }
                { print "unsupported packages entry: " $0 > "/dev/stderr"; exit 1 }
        '
}

# Print the source URLs of a spec, one a line, in the spec's order.
bench_spec_urls() {
        bench_yaml_block "$1" sources | sed -n 's/^[ \t-]*url:[ \t]*//p' | sed 's/[ \t]*#.*//; s/["'\'']//g; s:/*$::'
}

# Print the mirror URL of one archive (debian or debian-security) inside the local mirror.
bench_local_url() {
        echo "http://127.0.0.1:$1/$2"
}

# Start a static file server on a free port of 127.0.0.1 serving the mirror, and
# set bench_port and bench_server_pid. The caller stops it with bench_stop_server
# (an EXIT trap). lighttpd sends files with sendfile(2), so it takes almost no CPU
# time from the builds it serves, which share its cores. Without it, python3's
# http.server serves, which costs a cold build about 0.15 CPU s.
bench_start_server() {
        local log=$1
        if command -v lighttpd >/dev/null; then
                bench_start_lighttpd "$log"
        else
                bench_note "warning: lighttpd is missing (Debian package lighttpd); serving with python3's http.server, whose CPU time slows the builds"
                bench_start_python_server "$log"
        fi
        curl -fsS -o /dev/null "http://127.0.0.1:$bench_port/debian/dists/bookworm/InRelease" ||
                bench_die "the mirror does not serve debian/dists/bookworm/InRelease; run bench/mirror.sh"
}

bench_start_lighttpd() {
        local log=$1 conf=$1.conf mirror
        mirror=$(cd "$bench_mirror" && pwd)
        # A port the kernel picked for a socket that is closed again: free unless
        # another process takes it in the moment before lighttpd binds it.
        bench_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        printf '%s\n' \
                "server.document-root = \"$mirror\"" \
                'server.bind = "127.0.0.1"' \
                "server.port = $bench_port" \
                "server.errorlog = \"$log\"" >"$conf"
        lighttpd -D -f "$conf" >>"$log" 2>&1 &
        bench_server_pid=$!
        for _ in $(seq 100); do
                curl -s -o /dev/null "http://127.0.0.1:$bench_port/" && return 0
                kill -0 "$bench_server_pid" 2>/dev/null || bench_die "lighttpd exited: $(cat "$log")"
                sleep 0.1
        done
        bench_die "lighttpd did not respond on port $bench_port within 10 s: $(cat "$log")"
}

bench_start_python_server() {
        local log=$1
        python3 -u -m http.server --bind 127.0.0.1 --directory "$bench_mirror" 0 >"$log" 2>&1 &
        bench_server_pid=$!
        bench_port=
        for _ in $(seq 100); do
                bench_port=$(sed -n 's/^Serving HTTP on [0-9.]* port \([0-9]*\) .*/\1/p' "$log" | head -n 1)
                [ -n "$bench_port" ] && break
                kill -0 "$bench_server_pid" 2>/dev/null || bench_die "http.server exited: $(cat "$log")"
                sleep 0.1
        done
        [ -n "$bench_port" ] || bench_die "http.server did not report its port within 10 s: $(cat "$log")"
}

bench_stop_server() {
        if [ -n "${bench_server_pid:-}" ]; then
                kill "$bench_server_pid" 2>/dev/null || true
                wait "$bench_server_pid" 2>/dev/null || true
                bench_server_pid=
        fi
}

# Print the --mirror arguments that send every source URL of a spec to the local
# mirror: a URL whose path contains a "debian-security" segment goes to
# debian-security, every other one to debian.
bench_mirror_args() {
        local spec=$1 port=$2 url
        while read -r url; do
                case /$url/ in
                */debian-security/*) echo "--mirror=$url=$(bench_local_url "$port" debian-security)" ;;
                *) echo "--mirror=$url=$(bench_local_url "$port" debian)" ;;
                esac
        done < <(bench_spec_urls "$spec")
}

# Print the median of the numbers on stdin.
bench_median() {
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
