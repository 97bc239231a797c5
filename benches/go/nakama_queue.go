// The event queue a Nakama server runs today, for `benches/benches/nakama.rs`
// to run side by side with evqueue's EventQueue on the same workload.
//
// The pattern of Nakama's runtime event queue (server/runtime_event.go),
// written here from its description: a buffered channel of 65536 events,
// 8 goroutines ranging over it and calling the handler, and a non-blocking
// send that drops the newest event when the channel is full. The event is a
// plain struct (Nakama's is the protobuf api.Event, whose timestamp is one
// more allocation), built per emit the way a caller builds one.
//
// Flags: -secs, -producers, -workers, -capacity, -handler-ns (a spin per
// event; 0 is a no-op handler). The first producer times every emit. Prints
// one line of key=value pairs (see the end of main).
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type Event struct {
	Name       string
	Properties map[string]string
	Timestamp  time.Time
	External   bool
}

type queue struct {
	ch      chan *Event
	dropped atomic.Uint64
}

// emit is the queue's send: never blocks, drops the newest event when full.
func (q *queue) emit(e *Event) {
	select {
	case q.ch <- e:
	default:
		q.dropped.Add(1)
	}
}

func newEvent() *Event {
	return &Event{
		Name:       "match_end",
		Properties: map[string]string{"match_id": "m-42", "winner": "p-7"},
		Timestamp:  time.Now(),
	}
}

func spin(ns int64) {
	if ns <= 0 {
		return
	}
	start := time.Now()
	for time.Since(start).Nanoseconds() < ns {
	}
}

func quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func main() {
	secs := flag.Float64("secs", 2, "seconds the producers emit")
	producers := flag.Int("producers", 1, "emitting goroutines")
	workers := flag.Int("workers", 8, "handler goroutines")
	capacity := flag.Int("capacity", 65536, "channel capacity")
	handlerNs := flag.Int64("handler-ns", 0, "ns each handler call spins")
	flag.Parse()

	q := &queue{ch: make(chan *Event, *capacity)}
	var handled atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range q.ch {
				spin(*handlerNs)
				_ = e
				handled.Add(1)
			}
		}()
	}

	var stop atomic.Bool
	var emitted atomic.Uint64
	var pwg sync.WaitGroup
	for p := 1; p < *producers; p++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			n := uint64(0)
			for !stop.Load() {
				q.emit(newEvent())
				n++
			}
			emitted.Add(n)
		}()
	}
	samples := make([]int64, 0, 1<<22)
	start := time.Now()
	deadline := time.Duration(*secs * float64(time.Second))
	n := uint64(0)
	for time.Since(start) < deadline {
		for i := 0; i < 256; i++ {
			t := time.Now()
			q.emit(newEvent())
			samples = append(samples, time.Since(t).Nanoseconds())
		}
		n += 256
	}
	stop.Store(true)
	pwg.Wait()
	elapsed := time.Since(start).Seconds()
	handledInWindow := handled.Load()
	emitted.Add(n)
	close(q.ch)
	wg.Wait()

	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("p50_ns=%d p99_ns=%d p999_ns=%d max_ns=%d handled_per_sec=%.0f emitted=%d dropped=%d handled=%d maxrss_kb=%d gomaxprocs=%d\n",
		quantile(samples, 0.5), quantile(samples, 0.99), quantile(samples, 0.999), samples[len(samples)-1],
		float64(handledInWindow)/elapsed, emitted.Load(), q.dropped.Load(), handled.Load(), ru.Maxrss, runtime.GOMAXPROCS(0))
}
