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

/// Takes the handed-over socket called `name`, or the only one; `what` (the endpoint, or the
/// flag) starts the error line. The one place a socket is picked by name.
#[cfg(target_os = "linux")]
pub fn pick(name: Option<&str>, what: &dyn std::fmt::Display) -> anyhow::Result<std::os::fd::OwnedFd> {
    let mut sockets = handed_over()?;
    let names: Vec<&str> = sockets.iter().map(|s| s.name.as_str()).collect();
    let i = choose(&names, name).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(sockets.swap_remove(i).fd)
}

/// Which of the sockets named `names` is meant by `name` (none: the only one).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn choose(names: &[&str], name: Option<&str>) -> Result<usize, String> {
    let listed = || names.join(", ");
    match name {
        _ if names.is_empty() => Err("no socket was handed over (LISTEN_FDS is not set for this process): start it from a systemd .socket unit or systemd-socket-activate, or give an endpoint to bind".into()),
        Some(n) => names
            .iter()
            .position(|s| *s == n)
            .ok_or_else(|| format!("no socket called `{}` was handed over (there are: {})", hvsock::Printable::new(n), listed())),
        None if names.len() == 1 => Ok(0),
        None => Err(format!("{} sockets were handed over ({}): name one", names.len(), listed())),
    }
}

#[cfg(test)]
mod tests {
    use super::choose;

    /// The names handed over, the name asked for, the index or the error's start.
    type Case<'a> = (&'a [&'a str], Option<&'a str>, Result<usize, &'a str>);

    #[test]
    fn a_socket_is_picked_by_name_or_as_the_only_one() {
        let cases: [Case; 6] = [
            (&["web"], None, Ok(0)),
            (&["web", "msgs"], Some("msgs"), Ok(1)),
            (&["web"], Some("web"), Ok(0)),
            (&["web", "msgs"], None, Err("2 sockets were handed over (web, msgs): name one")),
            (&["web"], Some("ssh"), Err("no socket called `ssh` was handed over (there are: web)")),
            (&[], None, Err("no socket was handed over (LISTEN_FDS is not set")),
        ];
        for (names, name, want) in cases {
            let got = choose(names, name);
            match (&got, want) {
                (Ok(i), Ok(j)) => assert_eq!(*i, j, "{names:?} {name:?}"),
                (Err(e), Err(w)) => assert!(e.starts_with(w), "{names:?} {name:?}: {e}"),
                _ => panic!("{names:?} {name:?}: {got:?}"),
            }
        }
    }
}
