//! The plaintext receiver's CPU cost per read: framing a 64 KiB buffer of realistic lines
//! (`servers.web01.cpu.user 12.5 1700000000\n`, names and values varying) and parsing every
//! line, as the TCP loop does after each read. The target is ≥ 2,000,000 lines/s end to end,
//! so this part must stay well under 500 ns a line. Reported twice, as bytes/s and lines/s.
//! `receiver: …` is the receiver's own sequence (UTF-8 checked once per read, names cleaned).
//! Run: `cargo bench --bench ingest_line`.

use std::ops::ControlFlow;

use carbide::ingest::line::{parse_line, parse_line_ref, LineFramer};
use carbide::ingest::name::clean_cow;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const READ: usize = 64 * 1024;

/// Whole lines up to 64 KiB, as a busy client's read would hold.
fn realistic_buffer() -> (Vec<u8>, u64) {
    let hosts = ["web01", "web02", "db-primary", "cache17", "lb3"];
    let metrics = [
        "cpu.user",
        "cpu.system",
        "memory.used_bytes",
        "disk.sda.io_time",
        "net.eth0.rx_packets",
    ];
    let values = [
        "12.5", "0", "87.25", "1048576", "3.14159", "-2", "1e-3", "100",
    ];
    let mut buf = Vec::with_capacity(READ);
    let mut lines = 0u64;
    let mut i = 0usize;
    loop {
        let line = format!(
            "servers.{}.{} {} {}\n",
            hosts[i % hosts.len()],
            metrics[(i / 5) % metrics.len()],
            values[i % values.len()],
            1_700_000_000 + i / 25
        );
        if buf.len() + line.len() > READ {
            break;
        }
        buf.extend_from_slice(line.as_bytes());
        lines += 1;
        i += 1;
    }
    (buf, lines)
}

fn frame_and_parse(buf: &[u8]) -> usize {
    let mut framer = LineFramer::new();
    let mut n = 0;
    let r = framer.feed(buf, |line| {
        if let Ok(Some(p)) = parse_line_ref(line, 0.0) {
            black_box(p);
            n += 1;
        }
        ControlFlow::Continue(())
    });
    black_box(r.is_ok());
    n
}

fn frame_and_parse_owned(buf: &[u8]) -> usize {
    let mut framer = LineFramer::new();
    let mut n = 0;
    let r = framer.feed(buf, |line| {
        if let Ok(Some(p)) = parse_line(line, 0.0) {
            black_box(p);
            n += 1;
        }
        ControlFlow::Continue(())
    });
    black_box(r.is_ok());
    n
}

/// What the TCP receiver does per read: UTF-8 checked once for the whole read, then every
/// line framed, parsed and its name cleaned (borrowed when already canonical).
fn receiver_path(buf: &[u8]) -> usize {
    let mut framer = LineFramer::new();
    let mut n = 0;
    let r = framer.feed_parsed(buf, 0.0, |_, parsed| {
        if let Ok(Some(p)) = parsed {
            if let Ok(name) = clean_cow(p.name) {
                black_box((&name, p.timestamp, p.value));
                n += 1;
            }
        }
        ControlFlow::Continue(())
    });
    black_box(r.is_ok());
    n
}

fn frame_only(buf: &[u8]) -> usize {
    let mut framer = LineFramer::new();
    let mut n = 0;
    let r = framer.feed(buf, |line| {
        black_box(line);
        n += 1;
        ControlFlow::Continue(())
    });
    black_box(r.is_ok());
    n
}

fn bench(c: &mut Criterion) {
    let (buf, lines) = realistic_buffer();
    assert_eq!(frame_and_parse(&buf) as u64, lines);
    assert_eq!(receiver_path(&buf) as u64, lines);
    for (unit, throughput) in [
        ("bytes", Throughput::Bytes(buf.len() as u64)),
        ("lines", Throughput::Elements(lines)),
    ] {
        let mut g = c.benchmark_group(format!("ingest_line_64k_{unit}"));
        g.throughput(throughput);
        g.bench_function("frame", |b| b.iter(|| frame_only(black_box(&buf))));
        g.bench_function("frame+parse (borrowed name)", |b| {
            b.iter(|| frame_and_parse(black_box(&buf)))
        });
        g.bench_function("receiver: frame+parse+clean name (UTF-8 per read)", |b| {
            b.iter(|| receiver_path(black_box(&buf)))
        });
        g.bench_function("frame+parse (owned Datapoint)", |b| {
            b.iter(|| frame_and_parse_owned(black_box(&buf)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
