//! anb-worker: the queue consumer that runs the pipeline on uploaded videos. (Built in issue 5.)
