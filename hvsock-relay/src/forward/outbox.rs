//! What yamux writes to the connection, queued so that a write of its hardly ever waits.
//!
//! yamux stops reading the connection while it cannot send the answer to something it read (a
//! Pong to the peer's Ping): when both ends push data at once and both sockets' buffers are
//! full, each waits for the other to read, for ever (rust-yamux issue #227, still open; we met
//! it with 1,000 echoed streams in the lab). Queued here, the answer is always taken, so yamux
//! goes on reading. The queue is bounded by yamux's own flow control (a stream sends only what
//! the peer's window allows), and past [`MOST`] it pushes back all the same.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

use crate::conn::Writer;

/// Queued bytes past which a write waits: far past what a healthy peer leaves unread.
const MOST: usize = 256 << 20;

/// Queued bytes that are sent before more are queued: one system call for many frames.
const BATCH: usize = 256 << 10;

/// A connection's writing half with a queue in front.
pub struct Outbox {
    writer: Writer,
    queue: Vec<u8>,
    sent: usize,
}

impl Outbox {
    pub fn new(writer: Writer) -> Outbox {
        Outbox { writer, queue: Vec::new(), sent: 0 }
    }

    fn queued(&self) -> usize {
        self.queue.len() - self.sent
    }

    /// Sends what is queued; `Pending` (the writer's waker set) while some is left.
    fn push(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.queue.len() {
            match Pin::new(&mut self.writer).poll_write(cx, &self.queue[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // What was sent goes, once it is most of the queue: the queue never grows
                    // for what is already on its way.
                    if self.sent > BATCH && self.sent * 2 > self.queue.len() {
                        self.queue.drain(..self.sent);
                        self.sent = 0;
                    }
                    return Poll::Pending;
                }
            }
        }
        self.queue.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Outbox {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.queued() >= BATCH {
            if let Poll::Ready(Err(e)) = self.push(cx) {
                return Poll::Ready(Err(e));
            }
        }
        if self.queued() >= MOST {
            return Poll::Pending; // push set the waker
        }
        self.queue.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.push(cx))?;
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.push(cx))?;
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Writes are taken at once while the reader reads nothing, and all arrive in order.
    #[tokio::test]
    async fn writes_are_taken_while_the_peer_reads_nothing_and_arrive_in_order() {
        let (a, mut b) = tokio::io::duplex(4096);
        let mut out = Outbox::new(Box::new(a));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        // 3 MB into a pipe of 4 KiB that nobody reads: no write waits.
        for chunk in data.chunks(10_000) {
            let n = std::future::poll_fn(|cx| Pin::new(&mut out).poll_write(cx, chunk)).await.unwrap();
            assert_eq!(n, chunk.len());
        }
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        out.shutdown().await.unwrap();
        assert!(reader.await.unwrap() == data);
    }
}
