//! anb-core: settings, the domain model, the database store, blob storage and the job queue
//! shared by web and worker. Knows nothing about GStreamer or HTTP. (Built in issue 3.)
