// Where things live in the example's 512-byte segment.
export const LAYOUT = {
  size: 512,
  mutex: 0,        // Mutex: guards version and text
  updates: 16,     // Semaphore: posted by the board after each update
  acks: 32,        // Semaphore: posted by the watcher after reading one
  version: 48,     // Int32: update number
  length: 52,      // Int32: bytes of text
  text: 56,        // up to 456 bytes of UTF-8
};
