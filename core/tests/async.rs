//! Async waiting (feature `async`) under two executors: tokio (multi-thread
//! and current-thread runtimes) and `futures::executor` (`block_on`,
//! `LocalPool`). The subscriber as a `Stream` and `recv_async`,
//! `flush_async` and `shutdown_async`: order, wake-ups from other threads,
//! no blocked runtime thread, no event lost to a dropped future, lag,
//! the end of the stream, many awaiting subscribers, and a tight loop of
//! 100k events looking for a lost wake-up.
//!
//! Every wait is bounded (`tokio::time::timeout`, or `within` for an
//! executor with no timer), so a lost wake-up fails a test instead of
//! hanging it.

use evqueue::{DispatchError, Error, Event, EventQueue, OwnedEvent, RecvError, Start};
use futures::executor::{block_on, LocalPool};
use futures::task::LocalSpawnExt;
use futures::{FutureExt, StreamExt};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Generous bound for anything that should take milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);

fn small(workers: usize) -> evqueue::EventQueueBuilder {
    EventQueue::builder().capacity(1024).workers(workers)
}

fn numbered(n: u64) -> String {
    n.to_string()
}

fn number(event: &OwnedEvent) -> u64 {
    event.property("n").unwrap().parse().unwrap()
}

fn emit_n(queue: &EventQueue, n: u64) {
    let s = numbered(n);
    queue
        .emit(&Event::new("tick").properties(&[("n", &s)]))
        .unwrap();
}

/// Runs `f` on its own thread and fails if it takes longer than
/// [`PATIENCE`]: for `futures::executor`, which has no timer.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(v) => v,
        Err(_) => panic!("timed out (or panicked): {what}"),
    }
}

/// `fut` bounded by [`PATIENCE`] on tokio.
async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// A small xorshift, for random yields without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_stream_yields_every_event_in_order() {
    const N: u64 = 20_000;
    let queue = Arc::new(
        EventQueue::builder()
            .capacity(32_768)
            .workers(1)
            .build()
            .unwrap(),
    );
    let mut stream = queue.subscribe(Start::Now);
    let q = queue.clone();
    let producer = std::thread::spawn(move || {
        for n in 0..N {
            emit_n(&q, n);
        }
    });
    for n in 0..N {
        let event = bounded("next event", stream.next()).await.unwrap().unwrap();
        assert_eq!(number(&event), n);
    }
    producer.join().unwrap();
    assert_eq!(stream.lag(), 0);
    assert_eq!(stream.missed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_recv_async_wakes_on_a_push_from_another_thread() {
    let queue = Arc::new(small(1).build().unwrap());
    let mut sub = queue.subscribe(Start::Now);
    let q = queue.clone();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        q.emit(&Event::new("late")).unwrap();
    });
    let event = bounded("recv_async", sub.recv_async()).await.unwrap();
    assert_eq!(event.name, "late");
    producer.join().unwrap();
}

/// A current-thread runtime has one thread: if a pending `recv_async`
/// blocked it, the task that emits could never run.
#[test]
fn waiting_does_not_block_a_current_thread_runtime() {
    within("current-thread runtime", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let queue = Arc::new(small(1).build().unwrap());
            let mut sub = queue.subscribe(Start::Now);
            let ran = Arc::new(AtomicBool::new(false));
            let receiver = tokio::spawn(async move { sub.recv_async().await });
            // Let the receiver run and go pending.
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!receiver.is_finished());
            let (q, r) = (queue.clone(), ran.clone());
            tokio::spawn(async move {
                r.store(true, SeqCst);
                q.emit(&Event::new("from_another_task")).unwrap();
            })
            .await
            .unwrap();
            let event = receiver.await.unwrap().unwrap();
            assert!(ran.load(SeqCst));
            assert_eq!(event.name, "from_another_task");
        });
    });
}

/// The same with `futures::executor::LocalPool`: one thread runs a pending
/// receiver and, meanwhile, the task that emits.
#[test]
fn waiting_does_not_block_a_local_pool() {
    within("LocalPool", || {
        let queue = Arc::new(small(1).build().unwrap());
        let mut pool = LocalPool::new();
        let spawner = pool.spawner();
        let got = Arc::new(AtomicU64::new(0));
        let mut sub = queue.subscribe(Start::Now);
        let g = got.clone();
        spawner
            .spawn_local(async move {
                let event = sub.recv_async().await.unwrap();
                g.store(number(&event) + 1, SeqCst);
            })
            .unwrap();
        // The receiver is pending; nothing is there.
        pool.run_until_stalled();
        assert_eq!(got.load(SeqCst), 0);
        let q = queue.clone();
        spawner.spawn_local(async move { emit_n(&q, 41) }).unwrap();
        pool.run();
        assert_eq!(got.load(SeqCst), 42);
    });
}

#[test]
fn a_dropped_pending_future_loses_nothing() {
    within("dropped futures", || {
        let queue = small(1).build().unwrap();
        let mut sub = queue.subscribe(Start::Now);
        // Polled once (pending: registered), then dropped.
        assert!(sub.recv_async().now_or_never().is_none());
        assert!(sub.next().now_or_never().is_none());
        emit_n(&queue, 7);
        // A future made, never polled, dropped: nothing taken either.
        drop(sub.recv_async());
        let event = block_on(sub.recv_async()).unwrap();
        assert_eq!(number(&event), 7);
        // The same through the stream.
        emit_n(&queue, 8);
        assert_eq!(number(&block_on(sub.next()).unwrap().unwrap()), 8);
        assert_eq!(sub.try_recv(), Err(RecvError::Empty));
    });
}

/// `select!` drops the losing `recv_async` again and again while events
/// arrive: every event still comes out once, in order. The producer waits
/// for the receiver to catch up now and then, so that it goes pending and
/// the other branch wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_select_dropping_recv_async_loses_no_event() {
    const N: u64 = 5_000;
    let queue = Arc::new(
        EventQueue::builder()
            .capacity(8192)
            .workers(1)
            .build()
            .unwrap(),
    );
    let mut sub = queue.subscribe(Start::Now);
    let consumed = Arc::new(AtomicU64::new(0));
    let (q, c) = (queue.clone(), consumed.clone());
    let producer = std::thread::spawn(move || {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in 0..N {
            emit_n(&q, n);
            if n % 500 == 499 {
                while c.load(SeqCst) <= n {
                    std::thread::sleep(Duration::from_micros(100));
                }
                std::thread::sleep(Duration::from_millis(2));
            } else if rng.next() % 64 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    let mut next = 0;
    let mut dropped = 0u64;
    while next < N {
        tokio::select! {
            got = sub.recv_async() => {
                assert_eq!(number(&got.unwrap()), next);
                next += 1;
                consumed.store(next, SeqCst);
            }
            _ = tokio::task::yield_now() => dropped += 1,
        }
    }
    producer.join().unwrap();
    assert_eq!(sub.try_recv(), Err(RecvError::Empty));
    // The test means something only if the other branch won sometimes.
    assert!(dropped > 0, "no recv_async was ever dropped");
}

#[test]
fn lag_is_reported_through_the_stream() {
    within("lag", || {
        let queue = EventQueue::builder()
            .capacity(16)
            .workers(1)
            .build()
            .unwrap();
        let stream = queue.subscribe(Start::Now);
        for n in 0..100 {
            emit_n(&queue, n);
        }
        queue.shutdown(PATIENCE).unwrap();
        let items: Vec<_> = block_on(stream.collect());
        let lagged: u64 = items
            .iter()
            .map(|i| match i {
                Err(RecvError::Lagged(n)) => *n,
                Ok(_) => 0,
                Err(e) => panic!("unexpected {e:?}"),
            })
            .sum();
        let events: Vec<u64> = items.iter().flatten().map(number).collect();
        assert!(
            matches!(items[0], Err(RecvError::Lagged(_))),
            "{:?}",
            items[0]
        );
        assert!(lagged > 0);
        assert_eq!(lagged + events.len() as u64, 100);
        assert!(events.windows(2).all(|w| w[0] < w[1]), "{events:?}");
        assert_eq!(*events.last().unwrap(), 99);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_ends_after_shutdown() {
    let queue = Arc::new(small(1).build().unwrap());
    let mut pending = queue.subscribe(Start::Now);
    let mut stream = queue.subscribe(Start::Now);
    // One stream is already waiting when the queue shuts down.
    let waiting = tokio::spawn(async move { pending.next().await.map(|r| r.map(|e| e.name)) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    for n in 0..3 {
        emit_n(&queue, n);
    }
    let report = bounded(
        "shutdown_async",
        queue.shutdown_async(std::future::pending::<()>()),
    )
    .await
    .unwrap();
    assert_eq!((report.pushed, report.handled, report.left), (3, 3, 0));
    let mut seen = Vec::new();
    while let Some(item) = bounded("stream", stream.next()).await {
        seen.push(number(&item.unwrap()));
    }
    assert_eq!(seen, [0, 1, 2]);
    // Fused in practice: still the end.
    assert!(stream.next().await.is_none());
    assert_eq!(
        bounded("waiting", waiting).await.unwrap(),
        Some(Ok("tick".to_owned()))
    );
    // recv_async reports the close as `recv` does.
    let mut late = queue.subscribe(Start::Now);
    assert_eq!(late.recv_async().await, Err(RecvError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_stream_wakes_to_its_end_at_shutdown() {
    let queue = Arc::new(small(1).build().unwrap());
    let mut stream = queue.subscribe(Start::Now);
    let waiting = tokio::spawn(async move { stream.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let q = queue.clone();
    std::thread::spawn(move || q.shutdown(PATIENCE).unwrap())
        .join()
        .unwrap();
    assert!(bounded("end of stream", waiting).await.unwrap());
}

fn slow_counting(queue: &EventQueue, per_event: Duration) -> Arc<AtomicU64> {
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    queue.on_any(move |_| {
        std::thread::sleep(per_event);
        h.fetch_add(1, SeqCst);
        Ok(())
    });
    handled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_flush_async_resolves_after_the_handlers_finished() {
    let queue = small(2).lanes(4).build().unwrap();
    let handled = slow_counting(&queue, Duration::from_millis(1));
    for n in 0..50 {
        emit_n(&queue, n);
        queue
            .emit_keyed(&Event::new("keyed"), format!("player-{}", n % 5))
            .unwrap();
    }
    bounded("flush_async", queue.flush_async()).await.unwrap();
    // Exact: every handler of the 100 events returned, none is missing.
    assert_eq!(handled.load(SeqCst), 100);
    // Nothing pending: resolves at once, also on an idle queue.
    assert_eq!(queue.flush_async().now_or_never(), Some(Ok(())));
}

/// The events a flush waits for are fixed when it is called: one pushed
/// after the call (behind a slow handler) is not waited for. (One event
/// per claim: a worker's batch is waited for as a whole.)
#[test]
fn flush_async_waits_for_what_was_pushed_before_the_call() {
    within("flush_async target", || {
        let queue = small(1).claim_batch(1).build().unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let handled = Arc::new(AtomicU64::new(0));
        let (r, h) = (release.clone(), handled.clone());
        queue
            .on("tick", move |_| {
                h.fetch_add(1, SeqCst);
                Ok(())
            })
            .unwrap();
        queue
            .on("gate", move |_| {
                while !r.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            })
            .unwrap();
        for n in 0..10 {
            emit_n(&queue, n);
        }
        let flush = queue.flush_async();
        queue.emit(&Event::new("gate")).unwrap();
        // The gate blocks the only worker after the ten ticks: the flush
        // resolves anyway.
        block_on(flush).unwrap();
        assert_eq!(handled.load(SeqCst), 10);
        release.store(true, SeqCst);
        block_on(queue.flush_async()).unwrap();
    });
}

#[test]
fn futures_flush_async_on_several_threads_at_once() {
    within("flushes on four threads", || {
        let queue = Arc::new(small(2).build().unwrap());
        let handled = slow_counting(&queue, Duration::from_micros(200));
        for n in 0..200 {
            emit_n(&queue, n);
        }
        let flushers: Vec<_> = (0..4)
            .map(|_| {
                let (q, h) = (queue.clone(), handled.clone());
                std::thread::spawn(move || {
                    block_on(q.flush_async()).unwrap();
                    assert!(h.load(SeqCst) >= 200);
                })
            })
            .collect();
        for f in flushers {
            f.join().unwrap();
        }
        assert_eq!(handled.load(SeqCst), 200);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_shutdown_async_with_an_early_deadline_reports_what_is_left() {
    let queue = small(1).build().unwrap();
    let handled = slow_counting(&queue, Duration::from_millis(10));
    for n in 0..50 {
        emit_n(&queue, n);
    }
    let report = bounded(
        "shutdown_async",
        queue.shutdown_async(tokio::time::sleep(Duration::from_millis(40))),
    )
    .await
    .unwrap();
    assert!(report.timed_out);
    assert!(report.left > 0, "{report:?}");
    assert_eq!(report.pushed, 50);
    assert_eq!(report.handled + report.left, 50, "{report:?}");
    assert_eq!(report.handled, handled.load(SeqCst));
    assert_eq!(queue.emit(&Event::new("late")), Err(Error::Closed));
    // Again (either form): the first report.
    assert_eq!(
        queue.shutdown_async(std::future::ready(())).await.unwrap(),
        report
    );
    assert_eq!(queue.shutdown(Duration::ZERO).unwrap(), report);
}

/// With a deadline made by a thread (no runtime timer at all).
#[test]
fn futures_shutdown_async_with_a_thread_made_deadline() {
    within("shutdown_async on block_on", || {
        let queue = small(1).build().unwrap();
        slow_counting(&queue, Duration::from_millis(10));
        for n in 0..50 {
            emit_n(&queue, n);
        }
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(40));
            let _ = tx.send(());
        });
        let report = block_on(queue.shutdown_async(rx)).unwrap();
        assert!(report.timed_out && report.left > 0, "{report:?}");
        assert_eq!(report.handled + report.left, 50);
        // A deadline that never fires: the queue drains.
        let queue = small(2).build().unwrap();
        for n in 0..50 {
            emit_n(&queue, n);
        }
        let report = block_on(queue.shutdown_async(std::future::pending::<()>())).unwrap();
        assert_eq!(
            (report.handled, report.left, report.timed_out),
            (50, 0, false)
        );
    });
}

/// A `shutdown_async` dropped midway leaves a valid queue: closed, the
/// workers still draining; a later shutdown joins them and reports.
#[test]
fn a_dropped_shutdown_async_leaves_the_queue_closed_and_draining() {
    within("dropped shutdown_async", || {
        let queue = small(1).build().unwrap();
        let handled = slow_counting(&queue, Duration::from_millis(1));
        for n in 0..30 {
            emit_n(&queue, n);
        }
        assert!(queue
            .shutdown_async(std::future::pending::<()>())
            .now_or_never()
            .is_none());
        assert!(queue.is_shut_down());
        assert_eq!(queue.emit(&Event::new("late")), Err(Error::Closed));
        let report = queue.shutdown(PATIENCE).unwrap();
        assert_eq!((report.pushed, report.handled, report.left), (30, 30, 0));
        assert_eq!(handled.load(SeqCst), 30);
        // A flush after the shutdown: nothing left, so it is done.
        assert_eq!(block_on(queue.flush_async()), Ok(()));
    });
}

/// A flush awaiting on a queue whose shutdown stops the workers with
/// events left fails as `flush` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_async_fails_when_a_shutdown_leaves_events() {
    let queue = Arc::new(small(1).build().unwrap());
    slow_counting(&queue, Duration::from_millis(10));
    for n in 0..50 {
        emit_n(&queue, n);
    }
    let q = queue.clone();
    let flush = tokio::spawn(async move { q.flush_async().await });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let q = queue.clone();
    std::thread::spawn(move || q.shutdown(Duration::from_millis(30)).unwrap())
        .join()
        .unwrap();
    match bounded("flush", flush).await.unwrap() {
        Err(DispatchError::ShutDown { left }) => assert!(left > 0),
        other => panic!("expected ShutDown, got {other:?}"),
    }
}

/// While a blocking shutdown runs on another thread, `shutdown_async`
/// does not block on it: the runtime's other tasks keep running, and it
/// returns the same report.
#[test]
fn shutdown_async_awaits_a_blocking_shutdown_without_blocking() {
    within("shutdown_async beside shutdown", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let queue = Arc::new(small(1).build().unwrap());
            slow_counting(&queue, Duration::from_millis(2));
            for n in 0..40 {
                emit_n(&queue, n);
            }
            let q = queue.clone();
            let blocking = std::thread::spawn(move || q.shutdown(PATIENCE).unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
            let q = queue.clone();
            let ticks = Arc::new(AtomicU64::new(0));
            let t = ticks.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    t.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let report = q
                .shutdown_async(std::future::pending::<()>())
                .await
                .unwrap();
            assert_eq!(report, blocking.join().unwrap());
            assert_eq!((report.handled, report.left), (40, 0));
            ticker.abort();
            // The ticker ran while shutdown_async waited (about 80 ms).
            assert!(ticks.load(SeqCst) > 1);
        });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribers_await_at_once() {
    const SUBS: usize = 16;
    const N: u64 = 2_000;
    let queue = Arc::new(
        EventQueue::builder()
            .capacity(4096)
            .workers(1)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..SUBS)
        .map(|i| {
            let mut sub = queue.subscribe(Start::Now);
            tokio::spawn(async move {
                for n in 0..N {
                    // Half as streams, half through recv_async.
                    let event = if i % 2 == 0 {
                        sub.next().await.unwrap().unwrap()
                    } else {
                        sub.recv_async().await.unwrap()
                    };
                    assert_eq!(number(&event), n);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let q = queue.clone();
    let producer = std::thread::spawn(move || {
        for n in 0..N {
            emit_n(&q, n);
            if n % 100 == 0 {
                std::thread::yield_now();
            }
        }
    });
    for t in tasks {
        bounded("subscriber task", t).await.unwrap();
    }
    producer.join().unwrap();
}

/// 100k events one at a time with random yields on both sides: a lost
/// wake-up leaves the receiver pending for good (the timeout fails it).
/// The ring is small, so lapping happens too: every event is either
/// received or counted as missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_wake_up_in_a_tight_loop() {
    const N: u64 = 100_000;
    let queue = Arc::new(
        EventQueue::builder()
            .capacity(256)
            .workers(1)
            .build()
            .unwrap(),
    );
    let mut sub = queue.subscribe(Start::Now);
    let q = queue.clone();
    let producer = std::thread::spawn(move || {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for n in 0..N {
            emit_n(&q, n);
            match rng.next() % 16 {
                0 => std::thread::yield_now(),
                1 => std::thread::sleep(Duration::from_micros(1)),
                _ => {}
            }
        }
    });
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let (mut received, mut missed, mut last) = (0u64, 0u64, None);
    while received + missed < N {
        match bounded("recv_async in the tight loop", sub.recv_async()).await {
            Ok(event) => {
                let n = number(&event);
                assert!(last.map_or(true, |l| n > l));
                last = Some(n);
                received += 1;
            }
            Err(RecvError::Lagged(k)) => missed += k,
            Err(e) => panic!("{e:?}"),
        }
        if rng.next() % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    producer.join().unwrap();
    assert_eq!(received + missed, N);
    assert_eq!(last, Some(N - 1));
}

/// The same loop on `futures::executor::block_on` with the stream.
#[test]
fn no_lost_wake_up_in_a_tight_loop_on_block_on() {
    within("tight loop on block_on", || {
        const N: u64 = 100_000;
        let queue = Arc::new(
            EventQueue::builder()
                .capacity(256)
                .workers(1)
                .build()
                .unwrap(),
        );
        let mut stream = queue.subscribe(Start::Now);
        let q = queue.clone();
        let producer = std::thread::spawn(move || {
            let mut rng = Rng(0x1234_5678_9abc_def1);
            for n in 0..N {
                emit_n(&q, n);
                if rng.next() % 16 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let (received, missed) = block_on(async {
            let (mut received, mut missed) = (0u64, 0u64);
            while received + missed < N {
                match stream.next().await.unwrap() {
                    Ok(_) => received += 1,
                    Err(RecvError::Lagged(k)) => missed += k,
                    Err(e) => panic!("{e:?}"),
                }
            }
            (received, missed)
        });
        producer.join().unwrap();
        assert_eq!(received + missed, N);
    });
}

/// Futures are `Send`, so a multi-thread runtime can move them.
#[test]
fn the_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let queue = small(1).build_paused().unwrap();
    let mut sub = queue.subscribe(Start::Now);
    is_send(&sub.recv_async());
    is_send(&queue.flush_async());
    is_send(&queue.shutdown_async(std::future::pending::<()>()));
}
