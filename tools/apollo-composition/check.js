// Composes every subgraph SDL in a folder with Apollo's composition library and fails on any
// composition error, so that our subgraphs stay servable by any standard federation gateway.
const fs = require('fs');
const path = require('path');
const { composeServices } = require('@apollo/composition');
const { parse } = require('graphql');

const dir = process.argv[2] || path.join(__dirname, '..', '..', 'schema');
const services = fs
  .readdirSync(dir)
  .filter((file) => file.endsWith('.graphql') && file !== 'supergraph.graphql')
  .sort()
  .map((file) => ({
    name: path.basename(file, '.graphql'),
    url: `http://subgraph.invalid/${file}`,
    typeDefs: parse(fs.readFileSync(path.join(dir, file), 'utf8')),
  }));

const result = composeServices(services);
if (result.errors && result.errors.length > 0) {
  for (const error of result.errors) console.error(`composition error: ${error.message}`);
  process.exit(1);
}
for (const hint of result.hints || []) console.log(`hint: ${hint.message}`);
console.log(`Apollo composition accepts: ${services.map((s) => s.name).join(', ')}`);
