//! The byte stream every bench connection carries, and its check: byte `i` of a stream is
//! `BLOCK[i % PERIOD]`, a block made from the run's seed. The period is prime, so a chunk
//! lost, doubled or moved by any usual write size shows as a wrong byte; a flipped byte shows
//! where it is. Writing and checking take slices of one prepared buffer: no allocation and
//! no arithmetic per byte.

/// The pattern's period (prime).
const PERIOD: usize = 65521;

/// The pattern for one seed, laid out long enough to take any chunk up to `max_chunk` bytes
/// from any phase as one slice.
pub struct Pattern {
    bytes: Vec<u8>,
    max_chunk: usize,
}

impl Pattern {
    pub fn new(seed: u64, max_chunk: usize) -> Pattern {
        // xorshift64*: cheap and good enough to make every phase look different.
        let mut x = seed | 1;
        let block: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        let bytes = block.iter().copied().cycle().take(PERIOD + max_chunk).collect();
        Pattern { bytes, max_chunk }
    }

    /// The `len` bytes at stream offset `at` (`len` at most the pattern's chunk size).
    pub fn at(&self, at: u64, len: usize) -> &[u8] {
        let phase = (at % PERIOD as u64) as usize;
        &self.bytes[phase..phase + len.min(self.max_chunk)]
    }

    /// Checks `got`, which starts at stream offset `at`; `Err(offset)` of the first wrong byte.
    pub fn check(&self, at: u64, got: &[u8]) -> Result<(), u64> {
        let mut done = 0;
        while done < got.len() {
            let n = (got.len() - done).min(self.max_chunk);
            let want = self.at(at + done as u64, n);
            if want != &got[done..done + n] {
                let i = want.iter().zip(&got[done..done + n]).position(|(a, b)| a != b).unwrap_or(0);
                return Err(at + (done + i) as u64);
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_chunking_checks_and_any_fault_is_found_where_it_is() {
        let p = Pattern::new(7, 4096);
        let stream: Vec<u8> = (0..200_000u64).step_by(1000).flat_map(|at| p.at(at, 1000).to_vec()).collect();
        for chunk in [1, 999, 4096, 65521, 100_000] {
            let mut at = 0;
            for c in stream.chunks(chunk) {
                p.check(at, c).unwrap();
                at += c.len() as u64;
            }
        }
        let mut flipped = stream.clone();
        flipped[123_457] ^= 1;
        assert_eq!(p.check(0, &flipped), Err(123_457));
        // A chunk of the usual sizes lost: the rest is out of phase.
        for size in [4096, 65536, 1 << 20] {
            let long: Vec<u8> =
                (0..3u64 << 20).step_by(4096).flat_map(|at| p.at(at, 4096).to_vec()).collect();
            let mut lost = long[..size].to_vec();
            lost.extend_from_slice(&long[2 * size..]);
            assert!(p.check(0, &lost).is_err(), "losing {size} bytes goes unseen");
        }
        // Another seed is another stream.
        assert!(Pattern::new(8, 4096).check(0, &stream[..4096]).is_err());
    }
}
