export * from './dma-query.js';
