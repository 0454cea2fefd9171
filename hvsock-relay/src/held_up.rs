//! Telling that a write is held up: a future that calls back when the one it wraps has to
//! wait. A copy tells its driver so, and the driver checks a held-up write's peer only then
//! (see [`ProbeTimer`](crate::join::policy::ProbeTimer)): a connection whose data flows has
//! no timer, which costs a clock read at every wake-up of the runtime (a system call in some
//! VMs).

use std::future::Future;
use std::pin::pin;

/// Runs `f`, calling `held_up` if it has to wait (once).
pub async fn telling<F: Future>(f: F, held_up: impl FnOnce()) -> F::Output {
    let mut f = pin!(f);
    let mut held_up = Some(held_up);
    std::future::poll_fn(|cx| {
        let polled = f.as_mut().poll(cx);
        if polled.is_pending() {
            if let Some(tell) = held_up.take() {
                tell();
            }
        }
        polled
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn only_a_future_that_waits_is_told_and_only_once() {
        let told = Cell::new(0);
        assert_eq!(telling(async { 7 }, || told.set(told.get() + 1)).await, 7);
        assert_eq!(told.get(), 0, "a ready future is not held up");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = telling(rx, || told.set(told.get() + 1));
        let (got, ()) = tokio::join!(waiting, async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            tx.send(5).unwrap();
        });
        assert_eq!((got.unwrap(), told.get()), (5, 1));
    }
}
