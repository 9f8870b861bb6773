"""Model files: what they are (`formats`), what they hold (`ms_inspect`, `flatbuf`), repairing sources
(`onnx_fixes`, `tflite_dequant`), converting them (`convert`) and upgrading legacy `.ms` files (`legacy`)."""
