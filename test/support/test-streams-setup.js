module.exports = require('./test-streams').setup;
