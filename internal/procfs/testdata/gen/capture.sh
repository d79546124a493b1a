#!/bin/bash
# capture.sh regenerates the fixtures of ../ from live processes (run as
# root on x86_64). The process ids, addresses and inode numbers in the tests
# are those of the committed capture, so tests need updating afterwards.
#
# fixture.c: a two-thread C process with comm "a b) (c) d" (or $2), seven
# POSIX timers (every notify kind, CPU clocks), deleted/shared/memfd/SysV
# mappings, a file named with a newline, locked, growsdown, dontfork and
# dontdump anonymous mappings, eventfd, timerfd, signalfd, inotify, epoll,
# pipe, socket, flock'ed file and pidfd descriptors, changed rlimits and
# umask, a zombie and a sleeping child.
# fixture.py: a python3 process with threads, comms containing ") " and a
# deleted shared file mapping.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$here/..
D=${D:-/tmp/fixture}
W=$D/data
rm -rf "$W" && mkdir -p "$W" "$out"/{maps,smaps,status,stat,fdinfo,limits,timers,auxv,children}
gcc -O1 -o "$D/timers" "$here/fixture.c" -lpthread
cap() { cat "$1" > "$2" || echo "FAILED $1" >&2; }

"$D/timers" "$W" > "$W.out" 2>&1 &
sleep 0.5
read -r P T Z S < "$W.out"
cap /proc/$P/timers "$out/timers/c-fixture.txt"
cap /proc/$P/maps "$out/maps/c-fixture.txt"
cap /proc/$P/smaps "$out/smaps/c-fixture.txt"
cap /proc/$P/status "$out/status/c-fixture-main.txt"
cap /proc/$P/task/$T/status "$out/status/c-fixture-thread.txt"
cap /proc/$P/stat "$out/stat/c-fixture-main.txt"
cap /proc/$P/task/$T/stat "$out/stat/c-fixture-thread.txt"
cap /proc/$Z/status "$out/status/zombie.txt"
cap /proc/$Z/stat "$out/stat/zombie.txt"
cap /proc/$P/limits "$out/limits/c-fixture.txt"
cap /proc/$P/auxv "$out/auxv/c-fixture.bin"
cap /proc/$P/task/$P/children "$out/children/c-fixture.txt"
cap /proc/$P/task/$T/children "$out/children/empty.txt"
line=$(sed -n 2p "$W.out")
for kv in ${line#fds }; do
	cap /proc/$P/fdinfo/${kv#*=} "$out/fdinfo/${kv%=*}.txt"
done
cap /proc/$P/fdinfo/0 "$out/fdinfo/stdin.txt"
kill $P $S

"$D/timers" "$W" $'nl\nbs\\ x)' > "$W.out2" 2>&1 &
sleep 0.5
read -r P T Z S < "$W.out2"
cap /proc/$P/status "$out/status/comm-escape.txt"
cap /proc/$P/stat "$out/stat/comm-newline.txt"
kill $P $S

/usr/bin/python3 "$here/fixture.py" "$W" > "$W.pyout" 2>&1 &
sleep 1
read -r P T1 _ < "$W.pyout"
cap /proc/$P/maps "$out/maps/python3.txt"
cap /proc/$P/smaps "$out/smaps/python3.txt"
cap /proc/$P/status "$out/status/python3.txt"
cap /proc/$P/task/$T1/status "$out/status/python3-thread.txt"
cap /proc/$P/stat "$out/stat/python3.txt"
cap /proc/$P/task/$T1/stat "$out/stat/python3-thread.txt"
cap /proc/$P/limits "$out/limits/python3.txt"
cap /proc/$P/auxv "$out/auxv/python3.bin"
cap /proc/$P/timers "$out/timers/none.txt"
kill $P

# a process in a child pid namespace, seen from outside: NSpid has two ids
unshare --fork --pid --mount-proc /bin/sleep 30 &
U=$!
sleep 0.5
P=$(pgrep -P $U)
cap /proc/$P/status "$out/status/pidns.txt"
cap /proc/$P/stat "$out/stat/pidns.txt"
kill $P
wait

# a kernel thread: empty maps
cap /proc/2/status "$out/status/kthreadd.txt"
cap /proc/2/stat "$out/stat/kthreadd.txt"
cap /proc/2/maps "$out/maps/kthreadd.txt"
cap /proc/2/limits "$out/limits/kthreadd.txt"
cap /proc/self/maps "$out/maps/cat.txt"
