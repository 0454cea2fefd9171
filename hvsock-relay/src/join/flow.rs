//! One direction's news, shared between its copy and the driver: how many chunks it has moved
//! (a counter the data path bumps; watchers compare it over time instead of reading the clock
//! per chunk), whether a write is held up in it (and news when one is), whether it has ended,
//! and the driver's word that its receiver takes no more.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
pub struct Flow {
    moves: AtomicU64,
    ended: AtomicBool,
    writing: AtomicBool,
    refused: AtomicBool,
    /// Told when `ended` or `refused` is set.
    news: Notify,
    /// Told when a write has to wait (a permit kept until the driver looks).
    held: Notify,
}

impl Flow {
    pub fn moved(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }

    pub fn set_writing(&self, writing: bool) {
        self.writing.store(writing, Ordering::Relaxed);
    }

    /// A write has to wait for its receiver: the driver's peer check starts, if it waits for
    /// this (see [`ProbeTimer`](super::policy::ProbeTimer)).
    pub fn held_up(&self) {
        self.held.notify_one();
    }

    /// Returns once a write has been held up since the last return.
    pub async fn until_held_up(&self) {
        self.held.notified().await
    }

    /// Whether a write is held up in it now (input that is quiet only because its receiver
    /// does not take it is not done).
    pub fn is_writing(&self) -> bool {
        self.writing.load(Ordering::Relaxed)
    }

    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        self.news.notify_waiters();
    }

    /// The driver's word: give up the held-up write.
    pub fn refuse(&self) {
        self.refused.store(true, Ordering::Relaxed);
        self.news.notify_waiters();
    }

    /// Returns once `is(self)` holds (checked again at each piece of news).
    async fn until(&self, is: impl Fn(&Flow) -> bool) {
        loop {
            let news = self.news.notified();
            tokio::pin!(news);
            news.as_mut().enable();
            if is(self) {
                return;
            }
            news.await;
        }
    }

    pub async fn until_ended(&self) {
        self.until(Flow::has_ended).await
    }

    pub async fn until_refused(&self) {
        self.until(|f| f.refused.load(Ordering::Relaxed)).await
    }

    /// Returns once this direction has ended, or has moved nothing for a whole `quiet`.
    pub async fn pause(&self, quiet: Duration) {
        loop {
            if self.has_ended() {
                return;
            }
            let before = self.moves();
            tokio::select! {
                () = tokio::time::sleep(quiet) => {}
                () = self.until_ended() => return,
            }
            if self.moves() == before {
                return;
            }
        }
    }
}

/// Marks a direction ended however its copy returns.
pub struct Ended<'a>(pub &'a Flow);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}
