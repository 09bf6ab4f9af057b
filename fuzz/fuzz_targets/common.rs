//! Shared by the targets: how an input is cut into a header and a body, and where the body is
//! split into chunks.

/// Header bytes read before the body: limits and the split seed.
pub const HEADER: usize = 4;

/// Sorted cut positions in `0..=len`, derived from `seed`; seed 0 means byte by byte.
pub fn cuts(seed: u16, len: usize) -> Vec<usize> {
    if seed == 0 {
        return (1..len).collect();
    }
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let n = usize::from(seed % 16);
    let mut out: Vec<usize> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % (len + 1)
        })
        .collect();
    out.sort_unstable();
    out
}
