"""One module per social network: its client factory and its error mapping (transient or permanent), shared by the collector and the direct-message channel."""
