//! CPython 3.11's `list.sort()`, so that sorting values which Python's `<` cannot order (NaN,
//! which every comparison calls false) gives graphite-web's order rather than a panic: Rust's
//! own sorts may panic on a comparison that is not a total order, and any other total order
//! would put NaN somewhere CPython does not.
//!
//! The algorithm is CPython's timsort as `Objects/listobject.c` has it in 3.11: natural runs
//! (strictly descending ones reversed), short runs extended by binary insertion to `minrun`,
//! runs merged in powersort order with galloping. Only `<` is ever asked, with the same
//! operands in the same order as CPython asks it, so any `lt` gives CPython's result for it.

/// After this many wins in a row a merge switches to galloping.
const MIN_GALLOP: usize = 7;

/// `sorted(values)` on Python floats.
pub fn sort_floats(values: &mut [f64]) {
    sort_by_lt(values, |a, b| a < b);
}

/// `list.sort()` with `lt` as `<` (stable: equal elements keep their order).
pub fn sort_by_lt<T: Copy>(v: &mut [T], lt: impl Fn(&T, &T) -> bool) {
    let n = v.len();
    if n < 2 {
        return;
    }
    let minrun = compute_minrun(n);
    let mut st = State {
        lt,
        tmp: Vec::new(),
        min_gallop: MIN_GALLOP,
        pending: Vec::new(),
        len: n,
    };
    let mut lo = 0usize;
    let mut remaining = n;
    while remaining > 0 {
        let (mut run, descending) = count_run(v, lo, lo + remaining, &st.lt);
        if descending {
            v[lo..lo + run].reverse();
        }
        if run < minrun {
            let force = remaining.min(minrun);
            binary_sort(v, lo, lo + force, lo + run, &st.lt);
            run = force;
        }
        st.found_new_run(v, run);
        st.pending.push(Run {
            base: lo,
            len: run,
            power: 0,
        });
        lo += run;
        remaining -= run;
    }
    st.force_collapse(v);
}

/// `list.sort(reverse=True)`: CPython reverses, sorts stably, and reverses again.
pub fn sort_by_lt_reversed<T: Copy>(v: &mut [T], lt: impl Fn(&T, &T) -> bool) {
    if v.len() < 2 {
        return;
    }
    v.reverse();
    sort_by_lt(v, lt);
    v.reverse();
}

fn compute_minrun(mut n: usize) -> usize {
    let mut r = 0;
    while n >= 64 {
        r |= n & 1;
        n >>= 1;
    }
    n + r
}

/// The run starting at `lo`: ascending (`a[i] >= a[i-1]`) or strictly descending.
fn count_run<T>(v: &[T], lo: usize, hi: usize, lt: &impl Fn(&T, &T) -> bool) -> (usize, bool) {
    let mut i = lo + 1;
    if i == hi {
        return (1, false);
    }
    let mut n = 2;
    let descending = lt(&v[i], &v[i - 1]);
    i += 1;
    while i < hi && lt(&v[i], &v[i - 1]) == descending {
        i += 1;
        n += 1;
    }
    (n, descending)
}

/// Binary insertion of `v[start..hi]` into the sorted `v[lo..start]`.
fn binary_sort<T: Copy>(
    v: &mut [T],
    lo: usize,
    hi: usize,
    start: usize,
    lt: &impl Fn(&T, &T) -> bool,
) {
    let mut start = if start == lo { start + 1 } else { start };
    while start < hi {
        let pivot = v[start];
        let (mut l, mut r) = (lo, start);
        while l < r {
            let p = l + ((r - l) >> 1);
            if lt(&pivot, &v[p]) {
                r = p;
            } else {
                l = p + 1;
            }
        }
        v.copy_within(l..start, l + 1);
        v[l] = pivot;
        start += 1;
    }
}

/// Where `key` goes in the sorted `a`, left of any equal elements, searching from `hint`.
fn gallop_left<T>(key: &T, a: &[T], hint: usize, lt: &impl Fn(&T, &T) -> bool) -> usize {
    let n = a.len() as isize;
    let hint = hint as isize;
    let at = |i: isize| &a[i as usize];
    let (mut lastofs, mut ofs) = (0isize, 1isize);
    if lt(at(hint), key) {
        let maxofs = n - hint;
        while ofs < maxofs {
            if lt(at(hint + ofs), key) {
                lastofs = ofs;
                ofs = (ofs << 1) + 1;
            } else {
                break;
            }
        }
        ofs = ofs.min(maxofs);
        lastofs += hint;
        ofs += hint;
    } else {
        let maxofs = hint + 1;
        while ofs < maxofs {
            if lt(at(hint - ofs), key) {
                break;
            }
            lastofs = ofs;
            ofs = (ofs << 1) + 1;
        }
        ofs = ofs.min(maxofs);
        let k = lastofs;
        lastofs = hint - ofs;
        ofs = hint - k;
    }
    lastofs += 1;
    while lastofs < ofs {
        let m = lastofs + ((ofs - lastofs) >> 1);
        if lt(at(m), key) {
            lastofs = m + 1;
        } else {
            ofs = m;
        }
    }
    ofs as usize
}

/// Where `key` goes in the sorted `a`, right of any equal elements, searching from `hint`.
fn gallop_right<T>(key: &T, a: &[T], hint: usize, lt: &impl Fn(&T, &T) -> bool) -> usize {
    let n = a.len() as isize;
    let hint = hint as isize;
    let at = |i: isize| &a[i as usize];
    let (mut lastofs, mut ofs) = (0isize, 1isize);
    if lt(key, at(hint)) {
        let maxofs = hint + 1;
        while ofs < maxofs {
            if lt(key, at(hint - ofs)) {
                lastofs = ofs;
                ofs = (ofs << 1) + 1;
            } else {
                break;
            }
        }
        ofs = ofs.min(maxofs);
        let k = lastofs;
        lastofs = hint - ofs;
        ofs = hint - k;
    } else {
        let maxofs = n - hint;
        while ofs < maxofs {
            if lt(key, at(hint + ofs)) {
                break;
            }
            lastofs = ofs;
            ofs = (ofs << 1) + 1;
        }
        ofs = ofs.min(maxofs);
        lastofs += hint;
        ofs += hint;
    }
    lastofs += 1;
    while lastofs < ofs {
        let m = lastofs + ((ofs - lastofs) >> 1);
        if lt(key, at(m)) {
            ofs = m;
        } else {
            lastofs = m + 1;
        }
    }
    ofs as usize
}

/// A run waiting to be merged, with its powersort power.
#[derive(Clone, Copy)]
struct Run {
    base: usize,
    len: usize,
    power: u32,
}

struct State<T, F> {
    lt: F,
    tmp: Vec<T>,
    min_gallop: usize,
    pending: Vec<Run>,
    len: usize,
}

/// How a merge loop ended (CPython's `Succeed` and `CopyA`/`CopyB` labels).
enum End {
    Done,
    CopyRest,
}

/// The power of the run `[s1, s1+n1)` followed by one of `n2` in a list of `n`.
fn powerloop(s1: usize, n1: usize, n2: usize, n: usize) -> u32 {
    let mut result = 0;
    let mut a = 2 * s1 + n1;
    let mut b = a + n1 + n2;
    loop {
        result += 1;
        if a >= n {
            a -= n;
            b -= n;
        } else if b >= n {
            break;
        }
        a <<= 1;
        b <<= 1;
    }
    result
}

impl<T: Copy, F: Fn(&T, &T) -> bool> State<T, F> {
    fn found_new_run(&mut self, v: &mut [T], n2: usize) {
        let Some(top) = self.pending.last().copied() else {
            return;
        };
        let power = powerloop(top.base, top.len, n2, self.len);
        while self.pending.len() > 1 && self.pending[self.pending.len() - 2].power > power {
            self.merge_at(v, self.pending.len() - 2);
        }
        if let Some(top) = self.pending.last_mut() {
            top.power = power;
        }
    }

    fn force_collapse(&mut self, v: &mut [T]) {
        while self.pending.len() > 1 {
            let mut n = self.pending.len() - 2;
            if n > 0 && self.pending[n - 1].len < self.pending[n + 1].len {
                n -= 1;
            }
            self.merge_at(v, n);
        }
    }

    fn merge_at(&mut self, v: &mut [T], i: usize) {
        let (sa, na) = (self.pending[i].base, self.pending[i].len);
        let (sb, nb) = (self.pending[i + 1].base, self.pending[i + 1].len);
        self.pending[i].len = na + nb;
        self.pending.remove(i + 1);
        let key = v[sb];
        let k = gallop_right(&key, &v[sa..sa + na], 0, &self.lt);
        let (sa, na) = (sa + k, na - k);
        if na == 0 {
            return;
        }
        let key = v[sa + na - 1];
        let nb = gallop_left(&key, &v[sb..sb + nb], nb - 1, &self.lt);
        if nb == 0 {
            return;
        }
        if na <= nb {
            self.merge_lo(v, sa, na, sb, nb);
        } else {
            self.merge_hi(v, sa, na, sb, nb);
        }
    }

    fn merge_lo(&mut self, v: &mut [T], sa: usize, mut na: usize, sb: usize, mut nb: usize) {
        self.tmp.clear();
        self.tmp.extend_from_slice(&v[sa..sa + na]);
        let tmp = &self.tmp;
        let lt = &self.lt;
        let (mut a, mut b, mut dest) = (0usize, sb, sa);
        v[dest] = v[b];
        dest += 1;
        b += 1;
        nb -= 1;
        let end = 'merge: {
            if nb == 0 {
                break 'merge End::Done;
            }
            if na == 1 {
                break 'merge End::CopyRest;
            }
            let mut min_gallop = self.min_gallop;
            loop {
                let (mut acount, mut bcount) = (0usize, 0usize);
                loop {
                    if lt(&v[b], &tmp[a]) {
                        v[dest] = v[b];
                        dest += 1;
                        b += 1;
                        bcount += 1;
                        acount = 0;
                        nb -= 1;
                        if nb == 0 {
                            break 'merge End::Done;
                        }
                        if bcount >= min_gallop {
                            break;
                        }
                    } else {
                        v[dest] = tmp[a];
                        dest += 1;
                        a += 1;
                        acount += 1;
                        bcount = 0;
                        na -= 1;
                        if na == 1 {
                            break 'merge End::CopyRest;
                        }
                        if acount >= min_gallop {
                            break;
                        }
                    }
                }
                min_gallop += 1;
                loop {
                    min_gallop -= usize::from(min_gallop > 1);
                    self.min_gallop = min_gallop;
                    let key = v[b];
                    let k = gallop_right(&key, &tmp[a..a + na], 0, lt);
                    acount = k;
                    if k > 0 {
                        v[dest..dest + k].copy_from_slice(&tmp[a..a + k]);
                        dest += k;
                        a += k;
                        na -= k;
                        if na == 1 {
                            break 'merge End::CopyRest;
                        }
                        if na == 0 {
                            break 'merge End::Done;
                        }
                    }
                    v[dest] = v[b];
                    dest += 1;
                    b += 1;
                    nb -= 1;
                    if nb == 0 {
                        break 'merge End::Done;
                    }
                    let key = tmp[a];
                    let k = gallop_left(&key, &v[b..b + nb], 0, lt);
                    bcount = k;
                    if k > 0 {
                        v.copy_within(b..b + k, dest);
                        dest += k;
                        b += k;
                        nb -= k;
                        if nb == 0 {
                            break 'merge End::Done;
                        }
                    }
                    v[dest] = tmp[a];
                    dest += 1;
                    a += 1;
                    na -= 1;
                    if na == 1 {
                        break 'merge End::CopyRest;
                    }
                    if acount < MIN_GALLOP && bcount < MIN_GALLOP {
                        break;
                    }
                }
                min_gallop += 1;
                self.min_gallop = min_gallop;
            }
        };
        match end {
            End::Done => v[dest..dest + na].copy_from_slice(&tmp[a..a + na]),
            End::CopyRest => {
                // The last element of A belongs after what is left of B.
                v.copy_within(b..b + nb, dest);
                v[dest + nb] = tmp[a];
            }
        }
    }

    fn merge_hi(&mut self, v: &mut [T], sa: usize, mut na: usize, sb: usize, mut nb: usize) {
        self.tmp.clear();
        self.tmp.extend_from_slice(&v[sb..sb + nb]);
        let tmp = &self.tmp;
        let lt = &self.lt;
        // Positions of the last remaining element of A (in `v`) and of B (in `tmp`), and the
        // slot to fill; they run downwards and may pass below zero, hence signed.
        let base_a = sa as isize;
        let mut a = (sa + na) as isize - 1;
        let mut b = nb as isize - 1;
        let mut dest = (sb + nb) as isize - 1;
        let at = |i: isize| i as usize;
        v[at(dest)] = v[at(a)];
        dest -= 1;
        a -= 1;
        na -= 1;
        let end = 'merge: {
            if na == 0 {
                break 'merge End::Done;
            }
            if nb == 1 {
                break 'merge End::CopyRest;
            }
            let mut min_gallop = self.min_gallop;
            loop {
                let (mut acount, mut bcount) = (0usize, 0usize);
                loop {
                    if lt(&tmp[at(b)], &v[at(a)]) {
                        v[at(dest)] = v[at(a)];
                        dest -= 1;
                        a -= 1;
                        acount += 1;
                        bcount = 0;
                        na -= 1;
                        if na == 0 {
                            break 'merge End::Done;
                        }
                        if acount >= min_gallop {
                            break;
                        }
                    } else {
                        v[at(dest)] = tmp[at(b)];
                        dest -= 1;
                        b -= 1;
                        bcount += 1;
                        acount = 0;
                        nb -= 1;
                        if nb == 1 {
                            break 'merge End::CopyRest;
                        }
                        if bcount >= min_gallop {
                            break;
                        }
                    }
                }
                min_gallop += 1;
                loop {
                    min_gallop -= usize::from(min_gallop > 1);
                    self.min_gallop = min_gallop;
                    let key = tmp[at(b)];
                    let k = na - gallop_right(&key, &v[at(base_a)..at(base_a) + na], na - 1, lt);
                    acount = k;
                    if k > 0 {
                        let ki = k as isize;
                        dest -= ki;
                        a -= ki;
                        v.copy_within(at(a + 1)..at(a + 1) + k, at(dest + 1));
                        na -= k;
                        if na == 0 {
                            break 'merge End::Done;
                        }
                    }
                    v[at(dest)] = tmp[at(b)];
                    dest -= 1;
                    b -= 1;
                    nb -= 1;
                    if nb == 1 {
                        break 'merge End::CopyRest;
                    }
                    let key = v[at(a)];
                    let k = nb - gallop_left(&key, &tmp[..nb], nb - 1, lt);
                    bcount = k;
                    if k > 0 {
                        let ki = k as isize;
                        dest -= ki;
                        b -= ki;
                        v[at(dest + 1)..at(dest + 1) + k]
                            .copy_from_slice(&tmp[at(b + 1)..at(b + 1) + k]);
                        nb -= k;
                        if nb == 1 {
                            break 'merge End::CopyRest;
                        }
                        if nb == 0 {
                            break 'merge End::Done;
                        }
                    }
                    v[at(dest)] = v[at(a)];
                    dest -= 1;
                    a -= 1;
                    na -= 1;
                    if na == 0 {
                        break 'merge End::Done;
                    }
                    if acount < MIN_GALLOP && bcount < MIN_GALLOP {
                        break;
                    }
                }
                min_gallop += 1;
                self.min_gallop = min_gallop;
            }
        };
        match end {
            End::Done => {
                if nb > 0 {
                    let start = at(dest + 1) - nb;
                    v[start..start + nb].copy_from_slice(&tmp[..nb]);
                }
            }
            End::CopyRest => {
                // The first element of B belongs before what is left of A.
                let ni = na as isize;
                v.copy_within(at(a + 1 - ni)..at(a + 1), at(dest + 1 - ni));
                dest -= ni;
                v[at(dest)] = tmp[at(b)];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so the comparison with Python needs no crate.
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    }

    #[test]
    fn sorts_like_a_total_order_without_nan() {
        let mut seed = 7;
        for len in [0, 1, 2, 3, 10, 63, 64, 65, 200, 1000, 5000] {
            for _ in 0..5 {
                let mut v: Vec<f64> = (0..len).map(|_| (lcg(&mut seed) % 50) as f64).collect();
                let mut want = v.clone();
                want.sort_by(f64::total_cmp);
                sort_floats(&mut v);
                assert_eq!(v, want, "len {len}");
            }
        }
    }

    #[test]
    fn stable() {
        let mut seed = 3;
        let mut v: Vec<(u64, usize)> = (0..3000).map(|i| (lcg(&mut seed) % 20, i)).collect();
        let mut want = v.clone();
        want.sort_by_key(|p| p.0);
        sort_by_lt(&mut v, |a, b| a.0 < b.0);
        assert_eq!(v, want);
        let mut want = v.clone();
        want.sort_by_key(|p| std::cmp::Reverse(p.0));
        sort_by_lt_reversed(&mut v, |a, b| a.0 < b.0);
        assert_eq!(v, want);
    }

    /// `sorted(...)` in CPython 3.11 for lists with NaN (results printed by CPython).
    #[test]
    fn nan_placed_as_cpython_places_it() {
        let nan = f64::NAN;
        let cases: [(&[f64], &[f64]); 3] = [
            (&[3.0, nan, 1.0, 2.0], &[3.0, nan, 1.0, 2.0]),
            (
                &[1.0, -2.5, nan, 0.0, -0.0, 3.25],
                &[-2.5, 0.0, -0.0, 1.0, nan, 3.25],
            ),
            (&[nan, 5.0, 4.0, 3.0], &[nan, 3.0, 4.0, 5.0]),
        ];
        for (input, want) in cases {
            let mut v = input.to_vec();
            sort_floats(&mut v);
            let bits = |s: &[f64]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&v), bits(want), "{input:?}");
        }
    }
}
