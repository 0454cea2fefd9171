//! An async echo server on tokio: every connection on vsock port PORT gets its bytes back,
//! each in a task of its own; the peer's half-close is passed back once all is echoed.
//!
//!   async_echo [PORT]

use hvsock::tokio::AsyncListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).and_then(|p| p.parse::<u32>().ok()).unwrap_or(5001);
    let listener = AsyncListener::bind(format!("vsock:any:{port}").as_str()).await?;
    eprintln!("echo listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let (mut r, mut w) = stream.into_split();
            match tokio::io::copy(&mut r, &mut w).await {
                Ok(n) => eprintln!("{peer}: echoed {n} bytes"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
            // Dropping the write half half-closes: the peer reads end of file.
        });
    }
}
