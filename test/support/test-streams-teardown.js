module.exports = require('./test-streams').teardown;
