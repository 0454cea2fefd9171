//! Round trips of SIZE-byte messages against `hvsock bench --serve`, by three clients over the
//! same path: hvsock's blocking `Stream`, hvsock's tokio `AsyncStream`, and tokio-vsock's
//! `VsockStream`. The clock is read twice per run, never per message (in a UML guest a clock
//! read is a system call). Prints `MODE round trips/s mean-us`.
//!
//!   hvsock-rr-bench blocking|async|tokio-vsock CID PORT COUNT SIZE

use std::io::{Read, Write};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn header(count: u64, size: usize) -> String {
    format!("HVSOCK-BENCH 1 rr - {count} {size} 0\n")
}

fn blocking(cid: u32, port: u32, count: u64, size: usize) -> std::io::Result<()> {
    let mut s = hvsock::Stream::connect(hvsock::VsockAddr::new(cid, port))?;
    s.write_all(header(count, size).as_bytes())?;
    let (out, mut back) = (vec![7u8; size], vec![0u8; size]);
    for _ in 0..count {
        s.write_all(&out)?;
        s.read_exact(&mut back)?;
    }
    Ok(())
}

async fn round_trips<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, count: u64, size: usize) -> std::io::Result<()> {
    s.write_all(header(count, size).as_bytes()).await?;
    let (out, mut back) = (vec![7u8; size], vec![0u8; size]);
    for _ in 0..count {
        s.write_all(&out).await?;
        s.read_exact(&mut back).await?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, cid, port, count, size] = &args[..] else {
        eprintln!("usage: hvsock-rr-bench blocking|async|tokio-vsock CID PORT COUNT SIZE");
        std::process::exit(2);
    };
    let (cid, port): (u32, u32) = (cid.parse().expect("CID"), port.parse().expect("PORT"));
    let (count, size): (u64, usize) = (count.parse().expect("COUNT"), size.parse().expect("SIZE"));
    // One thread, I/O only: no timer wheel, so no clock reads when the runtime parks.
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    let start = Instant::now();
    let r = match mode.as_str() {
        "blocking" => blocking(cid, port, count, size),
        "async" => rt.block_on(async {
            round_trips(hvsock::tokio::AsyncStream::connect(hvsock::VsockAddr::new(cid, port)).await?, count, size)
                .await
        }),
        "tokio-vsock" => rt.block_on(async {
            let s = tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(cid, port)).await?;
            round_trips(s, count, size).await
        }),
        _ => {
            eprintln!("mode: blocking, async or tokio-vsock");
            std::process::exit(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    if let Err(e) = r {
        eprintln!("{mode}: {e}");
        std::process::exit(1);
    }
    println!("{mode} {:.0} {:.1}", count as f64 / secs, secs * 1e6 / count as f64);
}
