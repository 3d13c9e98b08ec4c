//! Lookups in files of fixed-size records sorted by a 64-bit key that is a
//! hash (so its values spread evenly): a window of records read where the
//! key's value puts it, then, while it is not there, windows ever further
//! that way (a miss is mostly a near one), never past halving what is left.
//! A binary search with a read per step made ~26 reads per lookup in a
//! 50M-record file; this makes one or two of a few KiB.

/// Records read at a time.
pub const WINDOW: u64 = 512;

/// Where `value`, a uniform `bits`-bit number, would be among `records`
/// sorted values.
pub fn interpolate(value: u64, bits: u32, records: u64) -> u64 {
    ((u128::from(value) * u128::from(records)) >> bits) as u64
}

/// The records whose key (`key_of`) is `target`, concatenated, among
/// `records` records of `size` bytes sorted by key; `guess`: where the
/// target is expected. `read(from, to)` gives records `from..to`.
pub fn equal_range<E>(
    records: u64,
    size: usize,
    target: u64,
    guess: u64,
    key_of: impl Fn(&[u8]) -> u64,
    mut read: impl FnMut(u64, u64) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    // The first record whose key is `target` or more lies in `lo..=hi`.
    let (mut lo, mut hi) = (0, records);
    let mut guess = guess.min(records);
    let mut step = WINDOW;
    let (mut at, mut bytes) = loop {
        if lo >= hi {
            break (lo, Vec::new());
        }
        let start = guess.saturating_sub(WINDOW / 2).clamp(lo, hi.saturating_sub(WINDOW).max(lo));
        let end = (start + WINDOW).min(hi);
        let bytes = read(start, end)?;
        let keys: Vec<u64> = bytes.chunks_exact(size).map(&key_of).collect();
        match (keys.first(), keys.last()) {
            (Some(&first), _) if first >= target && start > lo => {
                hi = start;
                guess = hi.saturating_sub(step / 2).max(lo + (hi - lo) / 2);
            }
            (_, Some(&last)) if last < target => {
                lo = end;
                guess = (lo + step / 2).min(lo + (hi - lo) / 2);
            }
            _ => {
                let skip = keys.partition_point(|&k| k < target);
                break (start + skip as u64, bytes[skip * size..].to_vec());
            }
        }
        step *= 2;
    };
    // From there, the records of the key, read on past the window while they last.
    let mut out = Vec::new();
    loop {
        let equal = bytes.chunks_exact(size).take_while(|r| key_of(r) == target).count();
        out.extend_from_slice(&bytes[..equal * size]);
        at += (bytes.len() / size) as u64;
        if equal * size < bytes.len() || at >= records {
            return Ok(out);
        }
        bytes = read(at, (at + WINDOW).min(records))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_found_with_all_its_records_and_absent_keys_with_none() {
        // Keys with runs of equal ones, some longer than a window.
        let mut keys: Vec<u64> = (0..5_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8).collect();
        let long = keys[17];
        keys.extend(std::iter::repeat_n(long, 1_300));
        keys.extend(std::iter::repeat_n(keys[4_000], 3));
        keys.sort_unstable();
        let bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
        let n = keys.len() as u64;
        let key_of = |r: &[u8]| u64::from_le_bytes(r.try_into().unwrap());
        let reads = std::cell::Cell::new(0);
        let find = |target: u64, guess: u64| {
            let read = |from: u64, to: u64| -> Result<Vec<u8>, ()> {
                reads.set(reads.get() + 1);
                Ok(bytes[from as usize * 8..to as usize * 8].to_vec())
            };
            equal_range(n, 8, target, guess, key_of, read).unwrap().chunks_exact(8).map(key_of).collect::<Vec<_>>()
        };
        let mut distinct = keys.clone();
        distinct.dedup();
        for k in distinct.iter().copied().step_by(7).chain([keys[0], keys[keys.len() - 1]]) {
            let count = keys.iter().filter(|&&x| x == k).count();
            // A good guess, a bad one, and none at all find the same.
            for guess in [interpolate(k, 56, n), 0, n] {
                assert_eq!(find(k, guess), vec![k; count], "key {k} from {guess}");
            }
            assert!(find(k + 1, interpolate(k + 1, 56, n)).iter().all(|&x| x == k + 1));
        }
        assert!(find(u64::MAX, n).is_empty() && find(u64::MAX, 0).is_empty());
        assert_eq!(find(0, n), vec![0], "the first record, guessed last");
        assert_eq!(find(long, 0).len(), 1_301);
        assert!(equal_range(0, 8, 5, 0, key_of, |_, _| -> Result<Vec<u8>, ()> { unreachable!() }).unwrap().is_empty());
    }

    #[test]
    fn well_guessed_lookups_of_evenly_spread_keys_read_few_windows() {
        // Where a key lies differs from where its value puts it by ~√n/2
        // records: within a window at 20,000, a few windows at 2M.
        for (n, most) in [(20_000u64, 1.25), (2_000_000, 3.0)] {
            let mut spread: Vec<u64> = (0..n).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
            spread.sort_unstable();
            let bytes: Vec<u8> = spread.iter().flat_map(|k| k.to_le_bytes()).collect();
            let key_of = |r: &[u8]| u64::from_le_bytes(r.try_into().unwrap());
            let mut reads = 0;
            let step = (n / 1_000) as usize;
            for &k in spread.iter().step_by(step) {
                let read = |from: u64, to: u64| -> Result<Vec<u8>, ()> {
                    reads += 1;
                    Ok(bytes[from as usize * 8..to as usize * 8].to_vec())
                };
                assert_eq!(equal_range(n, 8, k, interpolate(k, 64, n), key_of, read).unwrap(), k.to_le_bytes());
            }
            let per_lookup = reads as f64 / spread.len().div_ceil(step) as f64;
            assert!(per_lookup < most, "{n} keys: {per_lookup} reads a lookup");
        }
    }
}
