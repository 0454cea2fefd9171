//! Traffic for tests that run inside the lab guest: echo servers, checked clients.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use hvsock::tokio::AsyncListener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Deterministic bytes for a seed (xorshift), so each client checks its own echo.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Echoes every connection on a VM socket until its end-of-file, then half-closes.
pub async fn echo_vsock(endpoint: &str) {
    let listener = AsyncListener::bind(endpoint).await.unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(s);
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
}

/// Echoes every TCP connection the same way.
pub async fn echo_tcp(addr: &str) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
}

/// `n` clients at once, each sending a random 0..=1 MiB and checking the echo byte for byte;
/// returns the bytes sent in all.
pub async fn checked_clients<S, F, Fut>(n: u64, connect: F) -> u64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = std::io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    checked_clients_of(n, 1 << 20, connect).await
}

/// [`checked_clients`], each sending a random 0..=`most` bytes.
pub async fn checked_clients_of<S, F, Fut>(n: u64, most: usize, connect: F) -> u64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = std::io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let connect = connect.clone();
        tasks.spawn(async move {
            let len = (data(i + 1000, 4).iter().fold(0usize, |a, b| a << 8 | *b as usize)) % (most + 1);
            let sent = data(i, len);
            let stream = connect().await.unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
            let (mut r, mut w) = tokio::io::split(stream);
            let writer = {
                let sent = sent.clone();
                tokio::spawn(async move {
                    w.write_all(&sent).await.unwrap();
                    w.shutdown().await.unwrap();
                })
            };
            let mut got = Vec::with_capacity(len);
            r.read_to_end(&mut got).await.unwrap_or_else(|e| panic!("client {i}: read: {e}"));
            writer.await.unwrap();
            assert!(got == sent, "client {i}: {} bytes sent, {} came back different", sent.len(), got.len());
            len as u64
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.unwrap();
    }
    total
}

/// `hvsock ARGS` with its stderr read until `listening on`; the rest arrives from the thread.
pub fn start(args: &[&str]) -> (Child, JoinHandle<String>) {
    start_until(args, "listening on")
}

/// [`start`], reading until a line with `ready`.
pub fn start_until(args: &[&str], ready: &str) -> (Child, JoinHandle<String>) {
    let mut child = Command::new(super::HVSOCK).args(args).stderr(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut head = String::new();
    while !head.contains(ready) {
        assert!(reader.read_line(&mut head).unwrap() > 0, "hvsock {args:?} ended before `{ready}`: {head}");
    }
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        rest
    });
    (child, rest)
}
