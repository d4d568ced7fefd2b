//! Reading and writing images and JSON files with errors that name the file.
