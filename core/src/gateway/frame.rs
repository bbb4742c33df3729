//! Line framing, without I/O: the gateway's socket reader hands each chunk it has buffered to a
//! [`Framer`], which says how much of it it took and whether a line ended there. Kept here, apart
//! from the socket, so that the very code that cuts an agent's bytes into lines can be tested on
//! arbitrary streams cut at arbitrary places.

/// How one line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole line is in the buffer (its newline and a `\r` just before it removed). The last
    /// line of a stream may lack its newline; it is then kept as it is.
    Line,
    /// The line was longer than the cap: it was read to its newline (or the end of the stream)
    /// and dropped as it arrived; the buffer is empty.
    TooLong {
        /// Its length in bytes, the newline excluded.
        len: usize,
    },
    /// The stream ended between lines.
    Eof,
}

/// Cuts one line out of a byte stream, holding at most `cap` bytes of it: past the cap, the rest
/// of the line is counted as it arrives and thrown away. One `Framer` per line.
#[derive(Debug, Clone)]
pub struct Framer {
    cap: usize,
    /// Set once the line is over the cap: its length so far.
    dropped: Option<usize>,
}

impl Framer {
    /// A framer for one line of at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self { cap, dropped: None }
    }

    /// Takes what belongs to the line from `chunk` (the next bytes of the stream) into `line`:
    /// returns how many bytes of `chunk` it consumed, and how the line ended if it ended there
    /// (then the bytes after its newline were not consumed). `line` never grows past the cap,
    /// in length or in capacity (unless it came with more).
    pub fn feed(&mut self, chunk: &[u8], line: &mut Vec<u8>) -> (usize, Option<Frame>) {
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        match &mut self.dropped {
            Some(len) => *len = len.saturating_add(part.len()),
            None if line.len() + part.len() > self.cap => {
                self.dropped = Some(line.len() + part.len());
                *line = Vec::new();
            }
            None => {
                let want = line.len() + part.len();
                if want > line.capacity() {
                    // Grows as `Vec` would (doubling), but never past the cap.
                    let to = want.max(line.capacity().saturating_mul(2)).min(self.cap);
                    line.reserve_exact(to - line.len());
                }
                line.extend_from_slice(part);
            }
        }
        let Some(at) = newline else {
            return (chunk.len(), None);
        };
        if let Some(len) = self.dropped {
            return (at + 1, Some(Frame::TooLong { len }));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        (at + 1, Some(Frame::Line))
    }

    /// The stream ended: how the line in `line` (what [`Framer::feed`] kept of it) ends.
    pub fn end(&self, line: &[u8]) -> Frame {
        match self.dropped {
            Some(len) => Frame::TooLong { len },
            None if line.is_empty() => Frame::Eof,
            None => Frame::Line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `input`, fed in chunks of `size`.
    fn lines(input: &[u8], size: usize, cap: usize) -> Vec<(Frame, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            let mut framer = Framer::new(cap);
            let mut line = Vec::new();
            let frame = loop {
                if rest.is_empty() {
                    break framer.end(&line);
                }
                let (used, done) = framer.feed(&rest[..size.min(rest.len())], &mut line);
                rest = &rest[used..];
                if let Some(frame) = done {
                    break frame;
                }
            };
            if frame == Frame::Eof {
                return out;
            }
            assert!(line.capacity() <= cap, "{}", line.capacity());
            out.push((frame, line));
        }
    }

    #[test]
    fn lines_are_cut_at_newlines_and_capped() {
        for size in [1, 3, 100] {
            let got = lines(b"ab\ncd\r\n\n0123456789\nxy\r", size, 5);
            assert_eq!(
                got,
                vec![
                    (Frame::Line, b"ab".to_vec()),
                    (Frame::Line, b"cd".to_vec()),
                    (Frame::Line, b"".to_vec()),
                    (Frame::TooLong { len: 10 }, Vec::new()),
                    (Frame::Line, b"xy\r".to_vec()),
                ],
                "chunks of {size}"
            );
            assert_eq!(
                lines(b"12345\n123456", size, 5)[1].0,
                Frame::TooLong { len: 6 }
            );
        }
    }
}
