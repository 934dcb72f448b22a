//! anb-web: the axum HTTP API on top of anb-core. (Built in issue 4.)
