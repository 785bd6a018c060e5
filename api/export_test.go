package api

// MaxEchoedText is the longest value a problem echoes, for the tests.
const MaxEchoedText = maxEchoedText
