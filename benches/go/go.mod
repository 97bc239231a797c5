module evqueue.bench/nakama_queue

go 1.19
