"""Asset names and the columns of each asset's table, stated once for the stages, the store, the IO manager,
the viewer and the UI (``dagster/column_schema``)."""

from __future__ import annotations

from dataclasses import dataclass

FILE_MANIFEST = "file_manifest"
DECODED_FRAMES = "decoded_frames"
CLIP_MODEL = "clip_model"
TRAINED_AUTOENCODER = "trained_autoencoder"
EMBEDDINGS = "embeddings"
CLUSTERS = "clusters"
PROJECTION_3D = "3d_projection"
REORGANIZED_TREE = "reorganized_tree"

ASSET_NAMES = (
    FILE_MANIFEST,
    DECODED_FRAMES,
    CLIP_MODEL,
    TRAINED_AUTOENCODER,
    EMBEDDINGS,
    CLUSTERS,
    PROJECTION_3D,
    REORGANIZED_TREE,
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str


SCHEMAS: dict[str, tuple[Column, ...]] = {
    FILE_MANIFEST: (
        Column("relative_path", "string", "Path below the source folder (escaped when not valid UTF-8)."),
        Column("path", "string", "Absolute path (display form)."),
        Column("path_bytes", "binary", "The exact bytes of the absolute path."),
        Column("size", "int64", "Bytes."),
        Column("mtime_ns", "int64", "Modification time in ns."),
        Column("kind", "string", "image | video | unsupported."),
        Column("reason", "string", "Why the file is not used, if it is not."),
        Column("content_hash", "string", "BLAKE2b-128 of the bytes."),
        Column("width", "int64", "Pixels, from the header."),
        Column("height", "int64", "Pixels, from the header."),
    ),
    DECODED_FRAMES: (
        Column("relative_path", "string", "Path below the source folder."),
        Column("content_hash", "string", "Content hash of the file the frame came from."),
        Column("kind", "string", "image | video."),
        Column("frame_index", "int64", "0 for images; the kept frame's number for videos."),
        Column("timestamp", "float64", "Seconds into the video."),
        Column("width", "int64", "Original width in pixels."),
        Column("height", "int64", "Original height in pixels."),
        Column("thumbnail", "binary", "JPEG, short side ~thumbnail_size px."),
        Column("error", "string", "Why the file could not be decoded, if it could not."),
    ),
    CLIP_MODEL: (
        Column("model_id", "string", "Hub id or folder of the CLIP model."),
        Column("revision", "string", "Model revision (commit) when known."),
        Column("status", "string", "loaded | unavailable | not used."),
        Column("message", "string", "Why CLIP is unavailable or unused."),
        Column("category", "string", "A text category that may name clusters."),
        Column("prompt", "string", "The prompt embedded for the category."),
        Column("vector", "list<float32>", "The category's text embedding."),
    ),
    TRAINED_AUTOENCODER: (
        Column("status", "string", "trained | reused | not used."),
        Column("model_id", "string", "autoencoder:<variant>:<fingerprint>."),
        Column("checkpoint", "string", "Where the weights are stored."),
        Column("fingerprint", "string", "Identity of the training frames and options."),
        Column("epoch", "int64", "Epoch number (one row per epoch)."),
        Column("loss", "float64", "Training loss."),
        Column("reconstruction", "float64", "Reconstruction part of the loss."),
        Column("kl", "float64", "KL part of the loss (VAE)."),
    ),
    EMBEDDINGS: (
        Column("relative_path", "string", "Path below the source folder."),
        Column("content_hash", "string", "Content hash."),
        Column("kind", "string", "image | video."),
        Column("vector", "list<float32>", "L2-normalised embedding (videos: mean of frames)."),
        Column("backend", "string", "clip | cnn | autoencoder."),
        Column("model_id", "string", "Model identity; vectors are reused only for the same id."),
        Column("frames", "int64", "Frames averaged into the vector (1 for images)."),
        Column("category_probs", "list<float32>", "Zero-shot probabilities per category (CLIP)."),
        Column("top_category", "string", "The most probable category (CLIP)."),
        Column("top_probability", "float64", "Its probability."),
        Column("reused", "bool", "Taken from the previous run's table."),
    ),
    CLUSTERS: (
        Column("relative_path", "string", "Path below the source folder."),
        Column("content_hash", "string", "Content hash."),
        Column("cluster_id", "int64", "Cluster number; -1 is unsorted (HDBSCAN noise)."),
        Column("cluster_name", "string", "Folder name of the cluster."),
        Column("cluster_category", "string", "The category the cluster is named after, if any."),
        Column("category_confidence", "float64", "Mean probability of that category in the cluster."),
        Column("cluster_size", "int64", "Files in the cluster."),
        Column("hier_code", "string", "Sortable hierarchical code (cluster-rank)."),
        Column("distance_to_centroid", "float32", "Distance to the cluster centre (unit vectors)."),
        Column("duplicate_group", "string", "The group of copies of one picture the file is in, if any."),
        Column("duplicate_tier", "string", "exact (same bytes) | near (same picture) | similar | none."),
        Column("is_representative", "bool", "The copy to keep (largest, least compressed, oldest); ungrouped too."),
        Column("group_size", "int64", "Files in the duplicate group (1 when none)."),
        Column("representative", "string", "Relative path of the group's representative."),
        Column("similarity", "float64", "Similarity to the representative (0-1)."),
        Column("similar_to", "string", "The most similar picture outside the group."),
        Column("similar_score", "float64", "Its similarity."),
        Column("flags", "string", "Quality flags, comma-separated (blurry, too_dark, ...); empty when none."),
        Column("review_reason", "string", "The first flag: the _review/<reason>/ folder with --review."),
        Column("signature_hashes", "list<uint64>", "Perceptual hashes of the 8 turns/mirrors (reused by content)."),
        Column("signature_descriptor", "list<float32>", "Turn-invariant thumbnail descriptor (reused by content)."),
        Column("pixel_scores", "list<float32>", "blurry, too_dark, too_bright, low_information scores."),
        Column("method", "string", "The clustering method."),
        Column("settings", "string", "The clustering signature; a change re-clusters."),
        Column(
            "correction", "string", "Hand corrections that touched the file: rename, merge, move (comma-separated)."
        ),
    ),
    PROJECTION_3D: (
        Column("relative_path", "string", "Path below the source folder."),
        Column("content_hash", "string", "Content hash."),
        Column("x", "float32", "Map coordinate."),
        Column("y", "float32", "Map coordinate."),
        Column("z", "float32", "Map coordinate."),
        Column("cluster_id", "int64", "Cluster number."),
        Column("cluster_name", "string", "Cluster folder name."),
        Column("method", "string", "umap | tsne | pca, with notes."),
    ),
    REORGANIZED_TREE: (
        Column("source", "string", "Original file."),
        Column("destination", "string", "Where it was placed."),
        Column("content_hash", "string", "Content hash."),
        Column("cluster", "string", "Cluster folder."),
        Column("action", "string", "copy | hardlink | symlink | move | keep | relocate | trash | failed."),
        Column("partition", "string", "Source partition key."),
        Column("run_id", "string", "The reorganization run."),
        Column("previous_destination", "string", "Where it was before (relocations)."),
        Column("error", "string", "Why the placement failed, if it did."),
        Column("note", "string", "Why a file was kept where it is (e.g. the user edited the copy), if it was."),
        Column("dry_run", "bool", "Only the manifest was written."),
    ),
}
