//! Determinism for demo data: a tiny seeded generator (SplitMix64), so that every fresh start
//! produces the same demo catalog, accounts and ids, and screenshots and docs stay true.

use uuid::Uuid;

/// A seeded pseudo-random generator; not for anything secret.
#[derive(Debug, Clone)]
pub struct DemoRng(u64);

impl DemoRng {
    /// A generator for one named stream of demo data.
    pub fn new(stream: &str) -> Self {
        // FNV-1a of the stream name, so each kind of data has its own repeatable sequence.
        let seed = stream.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A UUID v7 at `millis` since the epoch with seeded random bits.
    pub fn uuid_v7(&mut self, millis: u64) -> Uuid {
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_stream_same_sequence() {
        let mut a = DemoRng::new("catalog");
        let mut b = DemoRng::new("catalog");
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(a.uuid_v7(1_700_000_000_000), b.uuid_v7(1_700_000_000_000));
        assert_eq!(a.uuid_v7(1).get_version_num(), 7);
        assert_ne!(DemoRng::new("x").next_u64(), DemoRng::new("y").next_u64());
    }
}
