//! A segment of the embedded log as a crash, a bad disk or another program may
//! leave it: any bytes. Decoding never panics, a record it returns re-encodes
//! to the very bytes it was decoded from, and a segment scan ends exactly
//! where decoding the records in sequence ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucent_common::log::record::{decode, encode, Decoded};
use lucent_common::log::segments::scan;

fuzz_target!(|data: &[u8]| {
    let mut at = 0usize;
    let mut next_offset = 0u64;
    while let Decoded::Record(record, used) = decode(&data[at..]) {
        let mut again = Vec::new();
        encode(&mut again, record.offset, record.headers, record.body);
        assert_eq!(&again[..], &data[at..at + used]);
        if record.offset != next_offset {
            break;
        }
        at += used;
        next_offset += 1;
    }

    let mut file = tempfile::tempfile().expect("a temporary file");
    std::io::Write::write_all(&mut file, data).expect("written");
    let end = scan(&file, 0).expect("scanned");
    assert_eq!(end.valid_bytes, at as u64);
    assert_eq!(end.next_offset, next_offset);
    assert_eq!(end.valid_bytes + end.trailing_bytes, data.len() as u64);
});
