//! Any text as the image names Nova reads from annotations and registries: repository names,
//! tags, tag prefixes, digests and ECR ARNs. Nothing panics; an accepted value reads back to
//! itself from its printed form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_domain::build::check_image_tag;
use nova_domain::{Digest, EcrRepositoryArn, ImageTag, RepositoryName, TagPrefix};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(v) = RepositoryName::parse(s) {
        assert_eq!(RepositoryName::parse(&v.to_string()).as_ref(), Ok(&v));
    }
    if let Ok(v) = ImageTag::parse(s) {
        assert_eq!(ImageTag::parse(&v.to_string()).as_ref(), Ok(&v));
        assert!(check_image_tag(&v.to_string()).is_ok(), "a registry tag Nova shows is one it would accept in a build: {v}");
    }
    if let Ok(v) = TagPrefix::parse(s) {
        assert_eq!(TagPrefix::parse(&v.to_string()).as_ref(), Ok(&v));
    }
    if let Ok(v) = Digest::parse(s) {
        assert_eq!(Digest::parse(&v.to_string()).as_ref(), Ok(&v));
    }
    if let Ok(v) = EcrRepositoryArn::parse(s) {
        assert_eq!(EcrRepositoryArn::parse(&v.to_string()).as_ref(), Ok(&v));
    }
});
