#!/bin/sh
# run-demo.sh BUILD_DIR [START_METHOD]: run the seed stories one after another,
# in the order of docs/guide.md, each under a heading. START_METHOD (fork,
# spawn or forkserver) is passed to every story; none means the default.
# Exits 1 if any story fails (non-zero exit, or no end within a minute).
#
# To add a story: add a line "program|heading" to STORIES, where program is
# the name of examples/<program>.c, or of a function below that runs a story
# made of several programs.
set -u

STORIES='
proc_pid|进程号
proc_basics|开启进程的两种方式
proc_join_many|join方法
proc_isolation|进程之间数据相互隔离
proc_daemon|守护进程
proc_zombie_orphan|僵尸进程与孤儿进程
proc_terminate|进程对象及其他方法
sync_tickets|互斥锁: 抢票
sync_ktv|信号量: KTV
sync_toilet|信号量: 厕所
sync_traffic_light|事件: 红绿灯
queue_basics|队列Queue模块
queue_ipc|IPC机制
queue_baozi|生产者消费者模型: 包子
queue_joinable|JoinableQueue
pipe_producer_consumer|管道: 生产者消费者
pipe_adder|管道: 双向通信 (adder)
shared_money|共享数据: Value, Array, SharedMemory
tcp_echo_server|多进程TCP服务端
thread_basics|开启线程的两种方式
thread_shared|线程之间数据共享
thread_daemon|守护线程
thread_info|线程对象及其他方法
thread_mutex|线程互斥锁
pool_story|进程池: apply, apply_async, 回调函数
pool_result|进程池: AsyncResult 与 terminate
pool_progress|进程池: map 与进度条
pool_echo_server|进程池版TCP服务端
manager_countdown|共享数据: Manager (count-down, 加锁与不加锁)
manager_queue|Manager over TCP: 工作队列 (server, worker, feeder)
'

build=${1:?usage: run-demo.sh BUILD_DIR [fork|spawn|forkserver]}
method=${2:-}
bin=$build/examples
limit=
command -v timeout >/dev/null 2>&1 && limit="timeout 60"

# manager_queue: three programs, as one would run them in three terminals:
# manager_queue_server (it writes its address to a file), then
# manager_queue_worker ADDRESS [method] in the background, then
# manager_queue_feeder ADDRESS, which shuts the server down at the end.
# Returns 0 if all three exit with 0; if the server never gives its address
# or the feeder fails, the others are stopped (SIGTERM) rather than waited
# for.
manager_queue() {
    for p in manager_queue_server manager_queue_worker manager_queue_feeder; do
        if [ ! -x "$bin/$p" ]; then
            echo "run-demo: $bin/$p is missing (build first)" >&2
            return 1
        fi
    done
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mproc-demo.XXXXXX") || return 1
    $limit "$bin/manager_queue_server" "$dir/address" &
    server=$!
    tries=0
    while [ ! -s "$dir/address" ]; do
        if ! kill -0 "$server" 2>/dev/null || [ "$tries" -ge 100 ]; then
            echo "run-demo: manager_queue_server gave no address" >&2
            kill "$server" 2>/dev/null
            wait "$server"
            rm -rf "$dir"
            return 1
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    address=$(cat "$dir/address")
    rm -rf "$dir"
    $limit "$bin/manager_queue_worker" "$address" ${method:+"$method"} &
    worker=$!
    $limit "$bin/manager_queue_feeder" "$address"
    feeder_rc=$?
    if [ "$feeder_rc" -ne 0 ]; then
        kill "$worker" "$server" 2>/dev/null
    fi
    wait "$worker"
    worker_rc=$?
    wait "$server"
    server_rc=$?
    [ "$feeder_rc" -eq 0 ] && [ "$worker_rc" -eq 0 ] && [ "$server_rc" -eq 0 ] && return 0
    echo "run-demo: manager_queue: server $server_rc, worker $worker_rc, feeder $feeder_rc" >&2
    return 1
}

failed=
count=0
while IFS='|' read -r prog title; do
    [ -n "$prog" ] || continue
    count=$((count + 1))
    echo "== $title: $prog${method:+ ($method)} =="
    if [ "$prog" = manager_queue ]; then
        if ! manager_queue; then
            echo "run-demo: $prog FAILED" >&2
            failed="$failed $prog"
        fi
    elif [ ! -x "$bin/$prog" ]; then
        echo "run-demo: $bin/$prog is missing (build first)" >&2
        failed="$failed $prog"
    elif ! $limit "$bin/$prog" ${method:+"$method"}; then
        echo "run-demo: $prog FAILED" >&2
        failed="$failed $prog"
    fi
    echo
done <<EOF
$STORIES
EOF

if [ -n "$failed" ]; then
    echo "run-demo: failed:$failed" >&2
    exit 1
fi
echo "run-demo: all $count stories passed${method:+ ($method)}"
