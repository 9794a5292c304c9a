#!/bin/sh
# run-demo.sh BUILD_DIR [START_METHOD]: run the seed stories one after another,
# in the order of docs/guide.md, each under a heading. START_METHOD (fork,
# spawn or forkserver) is passed to every story; none means the default.
# Exits 1 if any story fails (non-zero exit, or no end within a minute).
#
# To add a story: add a line "program|heading" to STORIES, where program is
# the name of examples/<program>.c.
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
'

build=${1:?usage: run-demo.sh BUILD_DIR [fork|spawn|forkserver]}
method=${2:-}
bin=$build/examples
limit=
command -v timeout >/dev/null 2>&1 && limit="timeout 60"

failed=
count=0
while IFS='|' read -r prog title; do
    [ -n "$prog" ] || continue
    count=$((count + 1))
    echo "== $title: $prog${method:+ ($method)} =="
    if [ ! -x "$bin/$prog" ]; then
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
