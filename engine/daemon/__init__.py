"""The shared daemon (`fimls serve`): the process that holds the models for every editor window, its frames protocol and its run directory."""
