//! Text from a user or a peer, made safe to put in a one-line message.

use std::fmt;

/// Shows untrusted text in a message: control characters escaped (`\r`, `\n`, `\u{1b}`, …) so
/// no peer can forge or break log lines, and anything longer than the limit cut, with its
/// full length said, so a 100 KB argument is not echoed back whole.
///
/// ```
/// use hvsock::Printable;
/// assert_eq!(Printable::new("CONNECT x\r\nforged").to_string(), "CONNECT x\\r\\nforged");
/// let long = "a".repeat(1000);
/// assert_eq!(Printable::new(&long).to_string(), format!("{}… (1000 bytes)", "a".repeat(64)));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Printable<'a> {
    text: &'a str,
    limit: usize,
}

impl<'a> Printable<'a> {
    /// At most 64 characters of `text`.
    pub fn new(text: &'a str) -> Printable<'a> {
        Printable { text, limit: 64 }
    }

    /// At most `chars` characters.
    pub fn limit(mut self, chars: usize) -> Printable<'a> {
        self.limit = chars;
        self
    }
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.text.chars().take(self.limit) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if self.text.chars().nth(self.limit).is_some() {
            write!(f, "… ({} bytes)", self.text.len())?;
        }
        Ok(())
    }
}
