"""A project's own vsock test: a server and a client in one guest, over the loopback CID."""
import socket
import threading
import unittest


class VsockEcho(unittest.TestCase):
    def test_echo_over_vsock_loopback(self):
        server = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        server.bind((socket.VMADDR_CID_ANY, 5000))
        server.listen()

        def serve():
            conn, _ = server.accept()
            with conn:
                conn.sendall(conn.recv(64).upper())

        threading.Thread(target=serve, daemon=True).start()
        with socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM) as client:
            client.connect((1, 5000))  # VMADDR_CID_LOCAL (named in Python 3.12)
            client.sendall(b"ping")
            self.assertEqual(client.recv(64), b"PING")
        server.close()


if __name__ == "__main__":
    unittest.main()
