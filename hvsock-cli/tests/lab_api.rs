//! The blocking Listener/Stream API against real AF_VSOCK: each test re-runs itself inside a
//! lab guest (see `common::in_lab`).
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use common::in_lab;
use hvsock::{BufferSize, Connector, HvAddr, Listener, ServiceId, SocketAddr, Stream, VmId, VsockAddr};

fn vsock(cid: u32, port: u32) -> SocketAddr {
    SocketAddr::Vsock(VsockAddr::new(cid, port))
}

#[test]
fn connect_accept_addresses_and_half_close() {
    in_lab("connect_accept_addresses_and_half_close", || {
        let listener = Listener::bind("vsock:any:20001").unwrap();
        assert_eq!(listener.local_addr().unwrap(), vsock(VsockAddr::CID_ANY, 20001));
        let server = thread::spawn(move || {
            let (mut s, peer) = listener.accept().unwrap();
            assert_eq!(s.peer_addr().unwrap(), peer);
            assert_eq!(s.local_addr().unwrap(), vsock(1, 20001));
            // A peek shows what came and leaves it for the read.
            let mut first = [0u8; 3];
            let mut peeked = 0;
            while peeked < 3 {
                peeked = s.peek(&mut first).unwrap();
            }
            assert_eq!(&first, b"req");
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap(); // ends only because the client half-closed
            s.write_all(b"reply after your EOF").unwrap();
            (got, peer)
        });
        let mut c = Stream::connect("vsock:lo:20001").unwrap();
        assert_eq!(c.peer_addr().unwrap(), vsock(1, 20001));
        c.write_all(b"request").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        let (got, peer) = server.join().unwrap();
        assert_eq!(got, b"request");
        assert_eq!(reply, "reply after your EOF");
        assert_eq!(peer.as_vsock().unwrap().port, c.local_addr().unwrap().as_vsock().unwrap().port);
        assert_eq!(peer.as_vsock().unwrap().cid, 1);
        assert!(c.write_all(b"after shutdown").is_err());
    });
}

#[test]
fn timeouts_refusals_and_unreachable_cids() {
    in_lab("timeouts_refusals_and_unreachable_cids", || {
        let listener = Listener::bind("vsock:lo:20002").unwrap();
        let mut c = Stream::connect_timeout("vsock:lo:20002", Duration::from_secs(2)).unwrap();
        let (_silent, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(200)));
        c.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_secs(3)));
        let start = Instant::now();
        let e = c.read(&mut [0u8; 16]).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}");
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(5), "{waited:?}");

        // Nobody on the port: the loopback transport answers with a reset, at once.
        for e in [
            Stream::connect("vsock:lo:20999").unwrap_err(),
            Stream::connect_timeout("vsock:lo:20999", Duration::from_secs(3)).unwrap_err(),
        ] {
            assert!(matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused), "{e}");
        }
        // No transport reaches CID 5 in this guest: the error comes at once, not at the
        // timeout (set far beyond any load's delay, so the bound below is no bet).
        let start = Instant::now();
        let e = Stream::connect_timeout("vsock:5:20002", Duration::from_secs(60)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    });
}

#[test]
fn nonblocking_clones_raw_fds_and_kernel_chosen_ports() {
    in_lab("nonblocking_clones_raw_fds_and_kernel_chosen_ports", || {
        let l = Listener::bind(VsockAddr::new(VsockAddr::CID_LOCAL, VsockAddr::PORT_ANY)).unwrap();
        let port = l.local_addr().unwrap().as_vsock().unwrap().port;
        assert_ne!(port, VsockAddr::PORT_ANY);
        l.set_nonblocking(true).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        l.set_nonblocking(false).unwrap();
        let l2 = l.try_clone().unwrap();

        let c = Stream::connect(VsockAddr::new(1, port)).unwrap();
        let (s, _) = l2.accept().unwrap();
        (&c.try_clone().unwrap()).write_all(b"via a clone").unwrap();
        // Through a raw fd and back, then an OwnedFd and back: the same connection.
        // SAFETY: the descriptor was just given up by `into_raw_fd`, open and owned by no one.
        let s = unsafe { Stream::from_raw_fd(s.into_raw_fd()) };
        let s = Stream::from(OwnedFd::from(s));
        let mut buf = [0u8; 11];
        (&s).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"via a clone");
        s.set_nonblocking(true).unwrap();
        assert_eq!((&s).read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        assert!(s.take_error().unwrap().is_none());
    });
}

#[test]
fn bind_errors_hyper_v_names_and_local_cid() {
    in_lab("bind_errors_hyper_v_names_and_local_cid", || {
        // Only the loopback transport is loaded: this guest serves no host CID.
        let e = Listener::bind("vsock:children:20010").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{e}");
        let _held = Listener::bind("vsock:any:20011").unwrap();
        let e = Listener::bind("vsock:lo:20011").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE), "{e}");
        // Bad names fail before any socket, as InvalidInput with the table's message.
        let e = Stream::connect("vsock:any:20011").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("only a listener can bind to any"));

        // Hyper-V spellings map by the names table: loopback + template GUID = CID 1, port.
        let l = Listener::bind("hv:loopback:00004e2c-facb-11e6-bd58-64006a7986d3").unwrap();
        assert_eq!(l.local_addr().unwrap(), vsock(1, 0x4e2c));
        let hv = HvAddr::new(VmId::LOOPBACK, ServiceId::from_vsock_port(0x4e2c));
        let c = Stream::connect(hv).unwrap();
        assert_eq!(c.peer_addr().unwrap(), vsock(1, 0x4e2c));

        // With only vsock_loopback loaded, the kernel's answer is the loopback CID.
        assert_eq!(hvsock::local_cid().unwrap(), VsockAddr::CID_LOCAL);
    });
}

#[test]
fn sixteen_mib_each_way_at_once_arrive_intact() {
    in_lab("sixteen_mib_each_way_at_once_arrive_intact", || {
        const LEN: usize = 16 << 20;
        let pattern = |seed: u32| -> Vec<u8> {
            (0..LEN as u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 11) as u8).collect()
        };
        let l = Listener::bind("vsock:lo:20020").unwrap();
        let server = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let reader = s.try_clone().unwrap();
            let echo_back = thread::spawn(move || {
                let mut got = Vec::new();
                (&reader).read_to_end(&mut got).unwrap();
                got
            });
            (&s).write_all(&pattern(2)).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            echo_back.join().unwrap()
        });
        let c = Stream::connect("vsock:lo:20020").unwrap();
        let writer = c.try_clone().unwrap();
        let send = thread::spawn(move || {
            for chunk in pattern(1).chunks(100_003) {
                (&writer).write_all(chunk).unwrap();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&c).read_to_end(&mut got).unwrap();
        send.join().unwrap();
        assert!(got == pattern(2), "server->client bytes differ");
        assert!(server.join().unwrap() == pattern(1), "client->server bytes differ");
    });
}

#[test]
fn vsock_options_and_the_connector() {
    in_lab("vsock_options_and_the_connector", || {
        let l = Listener::bind("vsock:lo:20030").unwrap();
        l.set_buffer_size(BufferSize::Max, 1 << 20).unwrap();
        l.set_buffer_size(BufferSize::Size, 512 << 10).unwrap();
        assert_eq!(l.buffer_size(BufferSize::Size).unwrap(), 512 << 10);
        assert_eq!(l.buffer_size(BufferSize::Max).unwrap(), 1 << 20);

        let c = Connector::new()
            .timeout(Duration::from_millis(1500))
            .buffer_size(128 << 10)
            .connect("vsock:lo:20030")
            .unwrap();
        assert_eq!(c.buffer_size(BufferSize::Size).unwrap(), 128 << 10);
        assert_eq!(c.connect_timeout_option().unwrap(), Duration::from_millis(1500));
        c.set_connect_timeout_option(Duration::from_secs(7)).unwrap();
        assert_eq!(c.connect_timeout_option().unwrap(), Duration::from_secs(7));
        let (accepted, _) = l.accept().unwrap();
        assert_eq!(accepted.buffer_size(BufferSize::Size).unwrap(), 512 << 10, "inherited from the listener");

        // Retries: nothing listens for the first ~0.3 s (time is the case), and the connector
        // keeps trying; it cannot succeed sooner, so the lower bound below is no bet.
        let late = thread::spawn(|| {
            thread::sleep(Duration::from_millis(300));
            let l = Listener::bind("vsock:lo:20031").unwrap();
            l.accept().unwrap()
        });
        let start = Instant::now();
        Connector::new().retries(50).retry_wait(Duration::from_millis(20)).connect("vsock:lo:20031").unwrap();
        assert!(start.elapsed() >= Duration::from_millis(250), "{:?}", start.elapsed());
        late.join().unwrap();
        // ... and gives up with the last error after its retries.
        let start = Instant::now();
        let e = Connector::new()
            .retries(3)
            .retry_wait(Duration::from_millis(100))
            .connect("vsock:lo:20032")
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused), "{e}");
        assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
        // Errors that retrying cannot fix are not retried: one retry would wait a minute.
        let start = Instant::now();
        assert!(Connector::new()
            .retries(1)
            .retry_wait(Duration::from_secs(60))
            .connect("vsock:5:1")
            .is_err());
        assert!(start.elapsed() < Duration::from_secs(30), "ENODEV was retried");
    });
}
