//! [`Divisor`]: division by a rate's constant, without a divide instruction.

/// A divisor fixed when a rate is made (a token bucket's refill interval, a window), kept
/// with its reciprocal so that a hit divides by two multiplications instead of a `div`
/// (tens of cycles on some CPUs).
///
/// For `d ≥ 2` the reciprocal is `c = ⌈2^128 / d⌉`, and `⌊n / d⌋ = ⌊c × n / 2^128⌋` for
/// every 64-bit `n` (Lemire, Kaser and Kurz, "Faster remainder by direct computation",
/// 2019: exact when the fraction has at least 64 + log2(d) bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Divisor {
    divisor: u64,
    /// `⌈2^128 / divisor⌉`; unused for a divisor of 1.
    reciprocal: u128,
}

impl Divisor {
    /// Division by `divisor`, taken as 1 when 0.
    pub(crate) const fn new(divisor: u64) -> Self {
        let divisor = if divisor == 0 { 1 } else { divisor };
        Self {
            divisor,
            reciprocal: if divisor == 1 {
                0
            } else {
                u128::MAX / divisor as u128 + 1
            },
        }
    }

    /// `⌊n / divisor⌋`.
    #[inline]
    pub(crate) fn divide(&self, n: u64) -> u64 {
        if self.divisor == 1 {
            return n;
        }
        let (low, high) = (self.reciprocal as u64, (self.reciprocal >> 64) as u64);
        let carry = (u128::from(low) * u128::from(n)) >> 64;
        ((u128::from(high) * u128::from(n) + carry) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn edges_divide_exactly() {
        let edges = [
            0,
            1,
            2,
            3,
            7,
            1 << 32,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        for d in edges.into_iter().chain([86_400_000_000_000, 1_000_000_007]) {
            for n in edges {
                assert_eq!(Divisor::new(d).divide(n), n / d.max(1), "{n} / {d}");
            }
        }
    }

    proptest! {
        #[test]
        fn divides_as_div(n in any::<u64>(), d in any::<u64>(), bits in 0..64u32) {
            // Divisors of every size, not only the huge ones a uniform draw gives.
            let d = (d >> bits).max(1);
            prop_assert_eq!(Divisor::new(d).divide(n), n / d);
            prop_assert_eq!(Divisor::new(d).divide(n % (d.saturating_mul(3))), n % d.saturating_mul(3) / d);
        }
    }
}
