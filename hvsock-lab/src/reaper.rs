//! What a lab starts goes when the lab does, even when the lab is killed outright (SIGKILL),
//! which no handler of ours sees. The parent-death signal each UML and host command gets reaches
//! only that one process: UML's helper processes (clones, not threads) and a host command's
//! background children outlived it and ran for ever. So every process group the lab starts is
//! told to a small watcher of its own, a shell reading a pipe that only this process can write:
//! when the pipe ends (this process is gone, however it ended) the watcher kills the groups
//! still on its list. A group is taken off the list once the lab has stopped it, so that a
//! later process that is given the same number is never touched.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// `+ PGID` puts a group on the list, `- PGID` takes it off; at the end of input, the groups
/// left are killed. Plain sh, no other program (dash's `kill` takes no `--`).
const WATCHER: &str = r#"
live=" "
while read -r op pg; do
  case "$op" in
    +) live="$live$pg " ;;
    -) case "$live" in *" $pg "*) live="${live%% $pg *} ${live#* $pg }" ;; esac ;;
  esac
done
for pg in $live; do kill -KILL "-$pg" 2>/dev/null; done
exit 0
"#;

/// The watcher's input, started on first use and kept for the life of this process (one
/// watcher serves every lab this process runs). None if it could not start: the lab still
/// runs, as it did before there was one.
fn watcher() -> Option<&'static ChildStdin> {
    static WATCHER_INPUT: OnceLock<Option<ChildStdin>> = OnceLock::new();
    WATCHER_INPUT
        .get_or_init(|| {
            Command::new("/bin/sh")
                .args(["-c", WATCHER])
                .stdin(Stdio::piped())
                // Not a caller's pipes: a test reading the lab's output to its end must not
                // wait for the watcher too.
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Out of the terminal's process group: Ctrl-C is for the lab, which then
                // stops everything itself; the watcher must still be there if it cannot.
                .process_group(0)
                .spawn()
                .ok()
                .and_then(|mut child| child.stdin.take())
        })
        .as_ref()
}

fn tell(line: String) {
    // One short write is atomic on a pipe, whichever thread writes it.
    if let Some(mut input) = watcher() {
        let _ = input.write_all(line.as_bytes());
    }
}

/// From now on, the process group `pgid` is killed if this process ends before [`forget`].
pub(crate) fn watch(pgid: u32) {
    tell(format!("+ {pgid}\n"));
}

/// The lab has stopped the group itself.
pub(crate) fn forget(pgid: u32) {
    tell(format!("- {pgid}\n"));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// The watcher script on its own: groups left on the list at the end are killed, one taken
    /// off is not (nor one it was never told of).
    #[test]
    fn the_watcher_kills_the_groups_left_on_its_list() {
        let group = || Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
        let (mut kept, mut forgotten, mut untold) = (group(), group(), group());
        let mut watcher =
            Command::new("/bin/sh").args(["-c", super::WATCHER]).stdin(Stdio::piped()).spawn().unwrap();
        let mut input = watcher.stdin.take().unwrap();
        write!(input, "+ {}\n+ {}\n+ 999999\n- {}\n- 12\n", kept.id(), forgotten.id(), forgotten.id())
            .unwrap();
        drop(input);
        assert!(watcher.wait().unwrap().success());
        let start = Instant::now();
        while kept.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(5), "the group left on the list still runs");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(forgotten.try_wait().unwrap().is_none(), "a group taken off the list was killed");
        assert!(untold.try_wait().unwrap().is_none());
        for mut c in [forgotten, untold] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}
