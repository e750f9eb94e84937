#!/bin/bash
# Hostile-file cases of issue 10, items 4-7 and 11, against one reachprobe
# binary: ./docs/hostile-files.sh ./reachprobe. Prints one line per case.
# Every run is offline: resolver, DoH control and targets are loopback ports.
BIN=$(realpath "$1"); W=$(mktemp -d); cd "$W"
export XDG_CONFIG_HOME=$W/cfg XDG_DATA_HOME=$W/data
printf 'nameserver 127.0.0.1:9\n' > resolv.conf
OFF="--resolv-conf $W/resolv.conf --control-doh https://127.0.0.1:9/dns-query --no-network-id"
files() { ls -A "$1" | tr '\n' ' '; }
app() { python3 - "$1" "$2" <<'PY'
import sqlite3,sys
c=sqlite3.connect(sys.argv[1]); c.execute("create table notes(id integer primary key, body text)")
c.execute("insert into notes(body) values('keep me')"); c.execute("pragma user_version=%d"%int(sys.argv[2])); c.commit(); c.close()
PY
}
# 5. another program's database
for v in 0 2 3; do
  for cmd in list run; do
    mkdir -p a$v$cmd; app a$v$cmd/app.db $v; h0=$(sha256sum < a$v$cmd/app.db)
    if [ $cmd = list ]; then $BIN list --db a$v$cmd/app.db >/dev/null 2>err; else
      printf '[target t]\ngroup = control\nhost = localhost\nports = 9\ntransports = tcp\n' > t.cat
      $BIN run --db a$v$cmd/app.db --targets t.cat $OFF --timeout 10s >/dev/null 2>err; fi
    rc=$?; h1=$(sha256sum < a$v$cmd/app.db)
    echo "5 foreign user_version=$v $cmd: exit $rc, file $([ "$h0" = "$h1" ] && echo unchanged || echo CHANGED), dir: $(files a$v$cmd)"
  done
done
mkdir typo; $BIN list --db typo/typo.db >/dev/null 2>err; echo "5 list --db typo.db: exit $?, dir: $(files typo)"
# 6. planted lock files (prune takes the lock; no network)
mkdir l1; echo precious > l1/victim; ln -s $W/l1/victim l1/x.db.lock; app l1/x.db 0 >/dev/null
$BIN prune --db l1/x.db --older-than 1d >/dev/null 2>err; echo "6 symlinked DB.lock: exit $?, victim now: $(head -c 20 l1/victim | tr '\n' ' ')"
mkdir l2; : > l2/x.db; mkfifo l2/x.db.lock; timeout 10 $BIN prune --db l2/x.db --older-than 1d >/dev/null 2>err; echo "6 FIFO DB.lock: exit $? ($(head -c 80 err))"
mkdir l3; echo precious > l3/victim; ln l3/victim l3/x.db.lock; : > l3/x.db
$BIN prune --db l3/x.db --older-than 1d >/dev/null 2>err; echo "6 hard-linked DB.lock: exit $?, victim now: $(head -c 20 l3/victim | tr '\n' ' ')"
# 7. schedule paths
out=$($BIN schedule install --method cron --dry-run --db "$W/a
* * * * * touch /tmp/pwned" 2>&1); echo "7 --db with newline, cron: exit $?, crontab entries: $(printf '%s\n' "$out" | grep -c '^[0-9*].* \* \* ')"
out=$(XDG_DATA_HOME="$W/d\$x" $BIN schedule install --method systemd --dry-run 2>&1); echo "7 XDG_DATA_HOME with \$, systemd: $(printf '%s\n' "$out" | grep '^Environment=XDG_DATA' | sed "s|$W|W|")"
out=$($BIN schedule install --method cron --dry-run --db "$W/x\\%y" 2>&1); echo "7 --db ending x\\%y, cron line: $(printf '%s\n' "$out" | grep -o "\-\-db .*" | sed "s|$W|W|")"
# 11. what kill -9 leaves: a run still "running", nobody holding DB.lock
# (the same rows a killed run leaves, made without a network: a finished
# offline run set back to running)
printf '[target t]\ngroup = control\nhost = localhost\nports = 9\ntransports = tcp\n' > t.cat
$BIN run --db k.db --targets t.cat $OFF --timeout 10s >/dev/null 2>&1
python3 - k.db <<'PY'
import sqlite3,sys
c=sqlite3.connect(sys.argv[1]); c.execute("update runs set status='running', ended=null"); c.commit(); c.close()
PY
echo "11 list, run left running, no lock holder: $($BIN list --db k.db 2>&1 | awk 'NR==2{print "duration", $4, "status", $5}')"
# 4. escape sequences in stored failure text
python3 - k.db <<'PY'
import sqlite3,sys
c=sqlite3.connect(sys.argv[1]); c.execute("update observations set failure=? where id=(select min(id) from observations)", ("unknown_failure: \x1b[2J\x1b]0;pwned\x07\u009b31m\u202eevil",)); c.commit(); c.close()
PY
n=$($BIN show 1 --db k.db 2>&1 | LC_ALL=C grep -c $'\x1b\|\xc2\x9b\|\xe2\x80\xae'); echo "4 show: lines with raw ESC/CSI/RLO: $n"
n=$($BIN analyze 1 --db k.db 2>&1 | LC_ALL=C grep -c $'\x1b\|\xc2\x9b\|\xe2\x80\xae'); echo "4 analyze: lines with raw ESC/CSI/RLO: $n"
rm -rf $W
