"""Thin ROS 2 nodes over the core: convert, call the core, convert, publish.

``NODES`` maps the short names used by the CLI, the launch file and the parameter
file to ``module:Class``; the node name in ROS is the module name.
"""

NODES = {
    "landmark": "emotion_perception.nodes.landmark_node:LandmarkNode",
    "transformer": "emotion_perception.nodes.transformer_node:TransformerNode",
    "lstm": "emotion_perception.nodes.lstm_node:LstmNode",
    "frame": "emotion_perception.nodes.frame_node:FrameNode",
    "image_emotion": "emotion_perception.nodes.image_emotion_node:ImageEmotionNode",
    "emotion_fusion": "emotion_perception.nodes.emotion_fusion_node:EmotionFusionNode",
    "attention": "emotion_perception.nodes.attention_node:AttentionNode",
    "hri": "emotion_perception.nodes.hri_node:HriNode",
}


def node_class(short_name: str):
    """Import and return the node class registered under ``short_name``."""
    import importlib

    try:
        target = NODES[short_name]
    except KeyError:
        raise ValueError(f"unknown node {short_name!r}; choose from {', '.join(NODES)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
