//! Error responses several operations share, named once for the OpenAPI document
//! (`responses(..., Unauthorized, NoSuchVideo)` in a handler's `#[utoipa::path]`).

// These types only describe responses to the document; no handler builds one.
#![allow(dead_code)]

use utoipa::IntoResponses;

use crate::error::Detail;

/// `shared_response!(Name, status, "description")`: a `Detail` body under that status.
macro_rules! shared_response {
    ($name:ident, $status:tt, $description:tt) => {
        #[derive(IntoResponses)]
        #[response(status = $status, description = $description)]
        pub struct $name(pub Detail);
    };
}

shared_response!(Unauthorized, 401, "No or bad token");
shared_response!(NotYours, 403, "Someone else's video");
shared_response!(BadLink, 403, "Bad or expired link");
shared_response!(NoSuchVideo, 404, "No such video");
shared_response!(OverUploadLimit, 413, "Larger than ANB_MAX_UPLOAD_BYTES");
shared_response!(BodyOver64KiB, 413, "A body over 64 KiB");
shared_response!(Busy, 503, "Busy; retry after Retry-After");
