//! `bench --serve`: answers every client's test, one thread per connection.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use super::pattern::Pattern;
use super::wire::{self, Direction, Header, Test};
use super::{receive, send, READ_BUF};
use hvsock_relay::blocking::{Listener, Socket};
use hvsock_relay::descriptors::{Ceiling, Place, Room};
use hvsock_relay::peers::{Checks, PeerPlace};

/// Serves until stopped, or until `count` connections have been answered. Each connection
/// has a thread of its own, but a thread that has answered one waits for the next instead of
/// ending: creating a thread costs a dozen system calls, which a connection-rate test would
/// measure instead of the path.
pub fn serve(listener: Listener, count: Option<u64>, checks: &Checks) -> anyhow::Result<()> {
    // At the descriptor ceiling it stops accepting: new clients wait in the listen queue.
    let room = Room::new(Ceiling::raise().conns);
    let mut served = 0;
    let idle = AtomicUsize::new(0);
    let (handoff, waiting) = mpsc::channel::<(Socket, (Place, Option<PeerPlace>))>();
    let waiting = Mutex::new(waiting);
    std::thread::scope(|scope| {
        while count.is_none_or(|c| served < c) {
            let place = room.enter();
            match listener.accept_from() {
                Ok((s, peer)) => {
                    let peer_place = match checks.admit(peer) {
                        Ok(place) => place,
                        Err(why) => {
                            eprintln!("hvsock: bench: {peer}: refused: {why}");
                            continue;
                        }
                    };
                    let place = (place, peer_place);
                    served += 1;
                    let s = (s, place);
                    // An idle thread has said so before it waits: it takes this one.
                    if idle.load(Ordering::Acquire) > 0 {
                        idle.fetch_sub(1, Ordering::AcqRel);
                        handoff.send(s).expect("an idle thread is waiting");
                        continue;
                    }
                    let (idle, waiting) = (&idle, &waiting);
                    scope.spawn(move || {
                        let mut s = s;
                        loop {
                            let (socket, place) = s;
                            if let Err(e) = answer(socket) {
                                eprintln!("hvsock: bench: {e}");
                            }
                            drop(place);
                            idle.fetch_add(1, Ordering::AcqRel);
                            match waiting.lock().unwrap().recv() {
                                Ok(next) => s = next,
                                Err(_) => return, // the server is done
                            }
                        }
                    });
                }
                // A client that gave up before we took it, or no descriptor free for now.
                Err(e) => eprintln!("hvsock: bench: accept: {e}"),
            }
        }
        drop(handoff);
    });
    Ok(())
}

fn answer(mut s: Socket) -> Result<(), String> {
    let line = wire::read_line(&mut s).map_err(|e| format!("reading a client's header: {e}"))?;
    let h = match Header::parse(&line) {
        Ok(h) => h,
        Err(why) => {
            let _ = s.write_all(format!("ERR {why}\n").as_bytes());
            return Err(why);
        }
    };
    let io = |e: std::io::Error| format!("{:?} test: {e}", h.test);
    let quiet = AtomicU64::new(0);
    let messages = s.carries_messages().then_some(h.size);
    match h.test {
        Test::Conn => s.write_all(b"OK\n").map_err(io)?,
        Test::Rr => {
            s.set_nodelay();
            let mut msg = vec![0u8; h.size];
            for _ in 0..h.count {
                s.read_exact(&mut msg).map_err(io)?;
                s.write_all(&msg).map_err(io)?;
            }
        }
        Test::Stream(dir) => {
            let theirs = Pattern::new(h.seed, READ_BUF.max(h.size));
            let ours = Pattern::new(h.seed.wrapping_add(1), h.size);
            let checked = match dir {
                Direction::Down => return send(&mut s, &ours, h.count, h.size, &quiet).map_err(io),
                Direction::Up => receive(&mut s, &theirs, h.count, &quiet, messages),
                Direction::Both => {
                    let mut writer = s.try_clone().map_err(io)?;
                    std::thread::scope(|scope| {
                        let sender = scope.spawn(|| send(&mut writer, &ours, h.count, h.size, &quiet));
                        let got = receive(&mut s, &theirs, h.count, &quiet, messages);
                        let sent = sender.join().expect("sender thread");
                        got.and(sent.map_err(|e| e.to_string()))
                    })
                }
            };
            let answer = match &checked {
                Ok(()) => "OK\n".to_string(),
                Err(why) => format!("ERR {why}\n"),
            };
            s.write_all(answer.as_bytes()).map_err(io)?;
            checked?;
        }
    }
    Ok(())
}
