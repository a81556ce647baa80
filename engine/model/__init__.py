"""The model side: loading a checkpoint, its tokenizer and FIM template, the prefill/decode loop, KV sessions per document, the lean CPU forward and the GPTQ kernels."""
