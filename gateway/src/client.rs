//! A minimal blocking HTTP/1.1 client over one keep-alive connection, for
//! the tests and the load generator: it writes requests byte for byte (so a
//! test can send what a well-behaved client would not) and reads responses
//! framed by `Content-Length` or by the server closing. Not a general
//! client: no chunked responses, no redirects, no TLS.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// One response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One connection.
pub struct Client {
    stream: TcpStream,
    /// Bytes read past the previous response.
    buf: Vec<u8>,
    request: Vec<u8>,
}

impl Client {
    /// Connects, with `TCP_NODELAY`.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::with_capacity(4096),
            request: Vec::with_capacity(256),
        })
    }

    /// `POST path` with `body` and `Content-Length`, then reads the reply.
    pub fn post(&mut self, path: &str, body: &[u8]) -> io::Result<Reply> {
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nHost: evqueue\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )?;
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request)?;
        self.read_reply()
    }

    /// `GET path`, then reads the reply.
    pub fn get(&mut self, path: &str) -> io::Result<Reply> {
        self.send_raw(format!("GET {path} HTTP/1.1\r\nHost: evqueue\r\n\r\n").as_bytes())?;
        self.read_reply()
    }

    /// Writes `bytes` as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                ));
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| invalid("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.strip_prefix("HTTP/1.1 "))
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        self.buf.drain(..head_end);
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| {
                v.parse::<usize>()
                    .map_err(|_| invalid("bad Content-Length"))
            })
            .transpose()?;
        let body = match length {
            Some(len) => {
                while self.buf.len() < len {
                    if self.fill()? == 0 {
                        return Err(invalid("connection closed inside a body"));
                    }
                }
                self.buf.drain(..len).collect()
            }
            None => {
                while self.fill()? != 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Whether the server has closed the connection: a read returns end of
    /// file (or a reset) with no bytes pending.
    pub fn is_closed_by_server(&mut self) -> bool {
        self.buf.is_empty() && matches!(self.fill(), Ok(0) | Err(_))
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
