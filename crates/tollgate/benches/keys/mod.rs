//! The keys both benchmarks use: the same generator, addresses and strings.

use std::net::{IpAddr, Ipv4Addr};

/// splitmix64: a small, good-enough generator for picking keys.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift reduction).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// A bijection on `u32` (each step is invertible), so distinct inputs give distinct outputs.
fn scramble(mut x: u32, seed: u32) -> u32 {
    x = x.wrapping_add(seed);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// `count` distinct IPv4 addresses, scattered over the whole address space.
pub(crate) fn ip_keys(count: usize) -> Vec<IpAddr> {
    (0..count as u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(scramble(i, 0x5eed_1234))))
        .collect()
}

/// `count` distinct keys `user:NNNNNN`, the numbers a random permutation of `0..count`.
pub(crate) fn string_keys(count: usize, rng: &mut Rng) -> Vec<String> {
    let mut ids: Vec<u32> = (0..count as u32).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i + 1));
    }
    ids.into_iter().map(|n| format!("user:{n:06}")).collect()
}
