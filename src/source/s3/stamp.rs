//! S3: opt-in, per bucket, the `loop-guard` user metadata key on
//! `PutObject`, `CreateMultipartUpload` and `CopyObject` with
//! `MetadataDirective::Replace`.

use std::collections::HashMap;

use aws_sdk_s3::operation::copy_object::CopyObjectInput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadInput;
use aws_sdk_s3::operation::put_object::PutObjectInput;
use aws_sdk_s3::types::MetadataDirective;
use aws_smithy_runtime_api::client::interceptors::context::Input;

use crate::carrier::log_skipped;
use crate::carrier::{Carrier, MapKey, StampError, KEY};
use crate::lineage::Lineage;
use crate::source::StampOptions;

/// Which buckets are stamped.
#[derive(Debug, Clone, Default)]
pub(crate) struct S3Stamping {
    pub(crate) buckets: Vec<String>,
}

impl S3Stamping {
    fn covers(&self, bucket: Option<&str>) -> bool {
        bucket.is_some_and(|b| self.buckets.iter().any(|ours| ours == b))
    }
}

pub(crate) fn stamp(input: &mut Input, options: &StampOptions, lineage: &Lineage) -> bool {
    let stamping = &options.s3;
    if stamping.buckets.is_empty() {
        return false;
    }
    if let Some(put) = input.downcast_mut::<PutObjectInput>() {
        if stamping.covers(put.bucket.as_deref()) {
            write(&mut put.metadata, lineage);
        }
        return true;
    }
    if let Some(create) = input.downcast_mut::<CreateMultipartUploadInput>() {
        if stamping.covers(create.bucket.as_deref()) {
            write(&mut create.metadata, lineage);
        }
        return true;
    }
    if let Some(copy) = input.downcast_mut::<CopyObjectInput>() {
        if stamping.covers(copy.bucket.as_deref()) {
            if copy.metadata_directive == Some(MetadataDirective::Replace) {
                write(&mut copy.metadata, lineage);
            } else {
                warn_copy_once(copy.bucket.as_deref().unwrap_or_default());
            }
        }
        return true;
    }
    false
}

/// The objects a call writes to opted-in buckets with our metadata (one,
/// or none), if it is one this module stamps.
pub(crate) fn writes(options: &StampOptions, input: &Input) -> Option<u32> {
    let stamping = &options.s3;
    let bucket = if let Some(put) = input.downcast_ref::<PutObjectInput>() {
        put.bucket.as_deref()
    } else if let Some(create) = input.downcast_ref::<CreateMultipartUploadInput>() {
        create.bucket.as_deref()
    } else if let Some(copy) = input.downcast_ref::<CopyObjectInput>() {
        copy.bucket.as_deref()
    } else {
        return None;
    };
    Some(u32::from(stamping.covers(bucket)))
}

/// Buckets already warned about a `CopyObject` that keeps its source's
/// metadata (once per bucket and process: a copy loop would flood the log).
static COPY_WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A `COPY` keeps the source's metadata, stamp included, so a copy loop
/// would never count up. It is not turned into a `REPLACE` here: keeping
/// the user's other metadata would need the source's (a `HeadObject`), and
/// this hook cannot make a request. Warns once per bucket.
fn warn_copy_once(bucket: &str) {
    let mut warned = COPY_WARNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !warned.iter().any(|b| b == bucket) {
        warned.push(bucket.to_owned());
        tracing::warn!(
            bucket,
            "CopyObject without MetadataDirective::Replace keeps the source's metadata and \
             its loop guard stamp: a copy loop through this bucket is not counted (logged once)"
        );
    }
}

/// S3's limit on user metadata: the UTF-8 bytes of every key and value.
const MAX_METADATA_BYTES: usize = 2048;

/// Adds our key, unless the metadata would then pass S3's 2 KB (the call
/// would fail): then the caller's metadata is left as it was.
fn write(metadata: &mut Option<HashMap<String, String>>, lineage: &Lineage) {
    let map = metadata.get_or_insert_with(HashMap::new);
    let previous = map.get(KEY).cloned();
    if let Err(error) = MapKey::default().write(map, lineage) {
        log_skipped("S3 user metadata", &error);
        return;
    }
    let bytes: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_METADATA_BYTES {
        match previous {
            Some(previous) => map.insert(KEY.to_owned(), previous),
            None => map.remove(KEY),
        };
        log_skipped(
            "S3 user metadata",
            &StampError::Invalid {
                reason: format!("{bytes} bytes, over S3's {MAX_METADATA_BYTES} for user metadata"),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::interceptor::tests::{chain, run_serialization_hook_with};
    use crate::interceptor::LoopGuardInterceptor;

    #[tokio::test]
    async fn only_opted_in_buckets_are_stamped() {
        let c = chain(2, None);
        let expected = c.lineage().to_string();
        let interceptor = LoopGuardInterceptor::new().stamp_s3_bucket("looping");
        let put = |bucket: &str| {
            PutObjectInput::builder()
                .bucket(bucket)
                .key("k")
                .metadata("theirs", "kept")
                .build()
                .unwrap()
        };
        let out =
            run_serialization_hook_with(interceptor.clone(), put("looping"), Some(c.clone())).await;
        let metadata = out.metadata.unwrap();
        assert_eq!(metadata[KEY], expected);
        assert_eq!(metadata["theirs"], "kept");
        let out =
            run_serialization_hook_with(interceptor.clone(), put("other"), Some(c.clone())).await;
        assert!(!out.metadata.unwrap().contains_key(KEY));

        let copy = |directive| {
            CopyObjectInput::builder()
                .bucket("looping")
                .key("k2")
                .copy_source("looping/k")
                .set_metadata_directive(directive)
                .build()
                .unwrap()
        };
        let out = run_serialization_hook_with(
            interceptor.clone(),
            copy(Some(MetadataDirective::Replace)),
            Some(c.clone()),
        )
        .await;
        assert_eq!(out.metadata.unwrap()[KEY], expected);
        let out =
            run_serialization_hook_with(interceptor.clone(), copy(None), Some(c.clone())).await;
        assert_eq!(out.metadata, None);

        let create = CreateMultipartUploadInput::builder()
            .bucket("looping")
            .key("big")
            .build()
            .unwrap();
        let out = run_serialization_hook_with(interceptor, create, Some(c)).await;
        assert_eq!(out.metadata.unwrap()[KEY], expected);
    }

    #[tokio::test]
    async fn metadata_that_would_pass_2_kb_is_left_as_it_was() {
        let interceptor = LoopGuardInterceptor::new().stamp_s3_bucket("looping");
        let input = PutObjectInput::builder()
            .bucket("looping")
            .key("k")
            .metadata("theirs", "x".repeat(2030))
            .build()
            .unwrap();
        let out = run_serialization_hook_with(interceptor, input, Some(chain(1, None))).await;
        let metadata = out.metadata.unwrap();
        assert_eq!(metadata.len(), 1);
        assert!(!metadata.contains_key(KEY));
    }
}
