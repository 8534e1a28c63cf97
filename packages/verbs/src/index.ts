export * from '@ibal/hca';
