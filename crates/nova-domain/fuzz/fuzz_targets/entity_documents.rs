//! Any JSON as a catalog document: validation never panics, a refused document names at least
//! one field, an accepted one keeps a reference that reads back to itself, and its image
//! annotations parse or report which annotation broke which rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_domain::{Entity, EntityRef, ImageLinks};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    match Entity::from_value(value) {
        Err(errors) => assert!(!errors.is_empty() && errors.iter().all(|e| !e.to_string().is_empty())),
        Ok(entity) => {
            let r = entity.entity_ref();
            assert_eq!(EntityRef::parse(&r.to_string()).as_ref(), Ok(r));
            if let Err(errors) = ImageLinks::from_annotations(|k| entity.annotation(k)) {
                assert!(!errors.is_empty());
            }
        }
    }
});
