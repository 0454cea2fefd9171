//! The sockets a service manager handed over, taken once at start: before anything else opens
//! a descriptor (the runtime's epoll would otherwise take number 3 when none was passed).

use std::sync::Mutex;

#[cfg(target_os = "linux")]
type Taken = std::io::Result<Vec<hvsock::activation::Inherited>>;
#[cfg(not(target_os = "linux"))]
type Taken = std::io::Result<Vec<()>>;

static HANDED_OVER: Mutex<Option<Taken>> = Mutex::new(None);

/// First thing in `main`.
pub fn take_at_start() {
    #[cfg(target_os = "linux")]
    let taken = hvsock::activation::take();
    #[cfg(not(target_os = "linux"))]
    let taken = Ok(Vec::new());
    *HANDED_OVER.lock().unwrap() = Some(taken);
}

/// The sockets taken at start (each handed out once).
#[cfg(target_os = "linux")]
pub fn handed_over() -> anyhow::Result<Vec<hvsock::activation::Inherited>> {
    match HANDED_OVER.lock().unwrap().take() {
        Some(Ok(sockets)) => Ok(sockets),
        Some(Err(e)) => Err(anyhow::anyhow!("the sockets handed over: {e}")),
        None => Ok(Vec::new()),
    }
}
