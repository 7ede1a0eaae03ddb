package relations

// Unrelate exposes unrelate to the external tests.
var Unrelate = unrelate
