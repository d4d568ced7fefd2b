//! The metrics of the SoM paper's benchmarks, each equal to the implementation
//! its benchmark is reported with.
//!
//! | module | benchmark | metrics | reference it equals |
//! |---|---|---|---|
//! | [`coco`] | COCO masks | `iou` (crowd), `area`, `to_bbox`, `merge` | pycocotools `maskApi.c` |
//! | [`semseg`] | ADE20K-150, COCO | mIoU (confusion matrix, ignore label, reduce-zero-label), open-vocabulary precision | mmsegmentation `intersect_and_union` |
//! | [`refer`] | RefCOCOg | REC Acc@0.5, RES mIoU and cIoU | torchvision `box_iou`, LAVT |
//! | [`grounding`] | Flickr30K Entities | Recall@1, any-box or merged-box | MDETR `flickr_eval.py` |
//! | [`davis`] | DAVIS 2017 | J, F, Mean/Recall/Decay, J&F | the DAVIS 2017 toolkit |
//!
//! `tests/metrics_parity.rs` proves each against fixtures written by
//! `tools/fixtures/gen_eval.py` from those references.

pub mod coco;
pub mod davis;
pub mod grounding;
pub mod refer;
pub mod semseg;
